// detail: a member's view of its group (see group_view.hpp).
#include "reactors/group_view.hpp"

#include "log.hpp"

namespace jetsource::detail {

std::uint64_t fnv1a64(std::string_view s) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t hrw_score(std::string_view s) noexcept {
  // FNV-1a alone avalanches poorly on keys that differ in their last bytes (measured: one new
  // member of four won 36 of 64 partitions); splitmix64's finalizer spreads it.
  std::uint64_t z = fnv1a64(s);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void group_view::apply(std::string_view key, std::optional<std::string_view> value,
                       std::uint64_t revision, clock::time_point now) {
  if (key.starts_with("member.")) {
    auto instance = std::string(key.substr(7));
    if (!value) {
      members_.erase(instance);
      return;
    }
    auto& m = members_[instance];
    if (m.revision != revision) m = {revision, now};
    return;
  }
  if (auto p = partition_of_key(key, "lease"); p && key.find('.', 6) == std::string_view::npos) {
    if (!value) {
      leases_.erase(*p);
      return;
    }
    auto l = decode_lease(*value);
    if (!l) {
      log()->warn("reactor {}: {}: {}", reactor_, key, l.error());
      return;
    }
    // Only a newer revision counts: a key read directly (lease_keeper::refresh) can be ahead of
    // a lagging watch, which then delivers what the view already passed.
    auto& s = leases_[*p];
    if (revision > s.revision) s = {std::move(*l), revision, now};
    return;
  }
  if (key.starts_with("park.")) {
    if (!value) {
      parks_.erase(std::string(key));
      return;
    }
    auto rec = decode_park(*value);
    if (!rec) {
      log()->warn("reactor {}: {}: {}", reactor_, key, rec.error());
      return;
    }
    parks_[std::string(key)] = {std::move(*rec), revision};
  }
}

bool group_view::member_live(std::string_view instance, clock::time_point now) const {
  if (instance == self_) return true;
  auto it = members_.find(instance);
  return it != members_.end() && now - it->second.since < lease_;
}

std::vector<std::string> group_view::live_members(clock::time_point now) const {
  std::vector<std::string> out{self_};
  for (const auto& [name, m] : members_)
    if (name != self_ && now - m.since < lease_) out.push_back(name);
  return out;
}

std::string group_view::target(std::uint32_t p, clock::time_point now) const {
  std::string best;
  std::uint64_t best_score = 0;
  for (const auto& name : live_members(now)) {
    const auto score = hrw_score(fmt::format("{}/{}/{}", reactor_, p, name));
    if (best.empty() || score > best_score || (score == best_score && name < best)) {
      best = name;
      best_score = score;
    }
  }
  return best;
}

const group_view::seen_lease* group_view::lease(std::uint32_t p) const {
  auto it = leases_.find(p);
  return it == leases_.end() ? nullptr : &it->second;
}

bool group_view::lease_available(std::uint32_t p, clock::time_point now) const {
  const auto* l = lease(p);
  if (l == nullptr) return true;
  if (l->value.holder.empty() || now - l->since >= lease_) return true;
  return l->value.holder == self_ && l->value.incarnation != incarnation_;
}

}  // namespace jetsource::detail
