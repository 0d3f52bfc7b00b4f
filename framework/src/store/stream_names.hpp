// The names a stream's configuration is spoken of with, in messages and in backup files.
#pragma once

#include <nats/nats.h>

#include <string_view>

namespace jetsource::detail {

inline std::string_view storage_name(jsStorageType t) {
  return t == js_FileStorage ? "file" : "memory";
}

inline std::string_view retention_name(jsRetentionPolicy r) {
  switch (r) {
    case js_LimitsPolicy:
      return "limits";
    case js_InterestPolicy:
      return "interest";
    case js_WorkQueuePolicy:
      return "workqueue";
  }
  return "unknown";
}

}  // namespace jetsource::detail
