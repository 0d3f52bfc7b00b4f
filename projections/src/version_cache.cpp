// detail: the applier's version cache (open addressing, linear probing).
#include "version_cache.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace jetsource::detail {

std::uint64_t* version_cache::find(std::string_view key, std::uint64_t h) noexcept {
  if (slots_.empty()) return nullptr;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    slot& s = slots_[i];
    if (s.hash == 0) return nullptr;
    if (s.hash == h && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return &s.version;
  }
}

std::uint64_t* version_cache::insert(std::string_view key, std::uint64_t v) {
  if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(64, 2 * slots_.size()));
  if (arena_.size() + key.size() > UINT32_MAX) throw std::length_error("version cache: keys");
  const std::uint64_t h = hash_of(key);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (slots_[i].hash != 0) i = (i + 1) & mask;
  slots_[i] = {h, v, static_cast<std::uint32_t>(arena_.size()),
               static_cast<std::uint32_t>(key.size())};
  arena_.append(key);
  ++size_;
  return &slots_[i].version;
}

void version_cache::reserve(std::size_t more) {
  const std::size_t want = 2 * (size_ + more);
  if (want > slots_.size()) rehash(std::bit_ceil(std::max<std::size_t>(64, want)));
}

void version_cache::rehash(std::size_t capacity) {
  std::vector<slot> old(capacity);
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const slot& s : old) {
    if (s.hash == 0) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void version_cache::clear() noexcept {
  slots_.clear();
  arena_.clear();
  size_ = 0;
}

}  // namespace jetsource::detail
