// detail: an applier's cache of the last applied version of each aggregate key, for the dedup
// check every message makes. Open addressing with linear probing over one array of slots (the
// key's hash, the version, where the key's bytes are), the keys in one arena: a lookup reads one
// slot and, when its hash matches, the key's bytes. A std::unordered_map of string keys read a
// bucket, the node before, the node and the key's heap string, each a cache miss once the
// aggregates outnumber the cache (with 50,000 of them it was a third of a projector worker's time:
// docs/performance.md).
//
// Thread-safety: none; one owner (an applier, on its worker thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource::detail {

class version_cache {
 public:
  /// The version stored for `key`, or null. The pointer stays valid until clear() or an
  /// insert() beyond what reserve() made room for.
  std::uint64_t* find(std::string_view key) noexcept { return find(key, hash_of(key)); }

  /// Stores `v` for `key`, which must not be present; returns where it is stored.
  std::uint64_t* insert(std::string_view key, std::uint64_t v);

  /// Room for `more` keys beyond those present: inserting up to that many moves no slot, so
  /// the pointers handed out stay valid (an applier's undo log holds them for a transaction).
  void reserve(std::size_t more);

  void clear() noexcept;
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

 private:
  struct slot {
    std::uint64_t hash = 0;  // 0: empty (hash_of never returns 0)
    std::uint64_t version = 0;
    std::uint32_t offset = 0, length = 0;  // of the key in arena_
  };
  static std::uint64_t hash_of(std::string_view key) noexcept {
    const std::uint64_t h = std::hash<std::string_view>{}(key);
    return h == 0 ? 1 : h;
  }
  std::uint64_t* find(std::string_view key, std::uint64_t h) noexcept;
  void rehash(std::size_t capacity);

  std::vector<slot> slots_;  // a power of two in size, at most half full
  std::string arena_;        // the keys, back to back
  std::size_t size_ = 0;
};

}  // namespace jetsource::detail
