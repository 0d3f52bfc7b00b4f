// detail: names the calling thread as `top -H`, `ps -L`, gdb and perf show it ("js-fetch",
// "js-worker-0", ...; Linux keeps the first 15 characters).
#pragma once

#include <pthread.h>

#include <string>

namespace jetsource::detail {

inline void name_this_thread(std::string name) {
  if (name.size() > 15) name.resize(15);
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace jetsource::detail
