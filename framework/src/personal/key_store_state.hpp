// detail: the state behind a key_store (KV handle, cache) and its key_provider implementation.
// The cache is guarded by `mutex_`; the counters are atomic; everything else is set in open()
// and then only read, from any thread.
#pragma once

#include <jetsource/personal.hpp>

#include "nats/handles.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace jetsource::detail {

struct kv_deleter {
  void operator()(kvStore* p) const noexcept { kvStore_Destroy(p); }
};

class key_store_state final : public key_provider {
 public:
  key_store_state() = default;
  key_store_state(const key_store_state&) = delete;
  key_store_state& operator=(const key_store_state&) = delete;
  ~key_store_state() override;  // wipes the cached keys

  result<data_key> key_for_write(std::string_view subject) override;
  result<std::optional<data_key>> key_for_read(std::string_view subject) override;
  result<void> forget(std::string_view subject);
  result<bool> has_marker(std::string_view subject);
  key_cache_stats stats() const {
    return {hits_.load(std::memory_order_relaxed), misses_.load(std::memory_order_relaxed)};
  }

  key_store_options options;
  std::string bucket;  // jsk-<stream>
  std::string stream;  // KV_jsk-<stream>
  std::shared_ptr<connection_state> conn;
  js_ptr js;
  std::unique_ptr<kvStore, kv_deleter> kv;

 private:
  struct entry {
    data_key key{};
    bool forgotten = false;
    std::chrono::steady_clock::time_point expires{};
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  result<std::optional<data_key>> fetch(std::string_view subject);
  result<bool> create(std::string_view subject, const data_key& k);
  std::optional<entry> cached(std::string_view subject);
  void remember(std::string_view subject, const data_key& k, bool forgotten);
  error forgotten_error(std::string_view subject) const;

  std::mutex mutex_;
  std::unordered_map<std::string, entry, string_hash, std::equal_to<>> cache_;
  std::atomic<std::uint64_t> hits_{0}, misses_{0};
};

}  // namespace jetsource::detail
