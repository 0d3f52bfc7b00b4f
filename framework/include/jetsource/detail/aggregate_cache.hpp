// detail: the repository's bounded LRU cache of loaded aggregates, which a command checks out
// while it runs and puts back when its copy is known to be right. Not API.
//
// Thread-safety: safe to share; one mutex guards the map and the LRU list (no other lock is taken
// while it is held).
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace jetsource::detail {

/// `V` has a `sequence` member: the stream sequence its state is at (a later one wins).
template <class V>
class aggregate_cache {
 public:
  /// 0: caches nothing.
  explicit aggregate_cache(std::size_t capacity) : capacity_(capacity) {}

  /// Moves an aggregate out of the cache: a command owns it while it runs (no copy). The entry
  /// stays (empty), so putting it back allocates nothing.
  std::optional<V> take(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.value) return std::nullopt;
    std::optional<V> out{std::move(it->second.value)};
    it->second.value.reset();
    return out;
  }

  /// Puts a copy back (or in), unless the cache holds a later one; the least recently used
  /// aggregate goes when the cache is full.
  void put(const std::string& key, V&& value) {
    if (capacity_ == 0) return;
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      auto& v = it->second.value;
      if (!v || v->sequence <= value.sequence) v = std::move(value);
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return;
    }
    lru_.push_front(key);
    entries_.emplace(key, entry{std::move(value), lru_.begin()});
    if (entries_.size() > capacity_) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
  }

  /// Drops an aggregate.
  void erase(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }

  /// Aggregates held (checked-out ones included).
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct entry {
    std::optional<V> value;  // empty while a command has it
    std::list<std::string>::iterator lru;
  };

  const std::size_t capacity_;
  mutable std::mutex mutex_;    // guards both below
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, entry> entries_;
};

}  // namespace jetsource::detail
