// detail: a member's view of its group, built from the bucket's watch (ADR 0014, "Membership"):
// the members and leases with the revision last seen and WHEN this observer saw it change (its
// own monotonic clock: no wall clocks are compared), the park records, and the target owner of
// each partition by rendezvous hashing over the live members.
// Pure code: no I/O; time is passed in.
//
// Thread-safety: none; one owner (the lease keeper's thread).
#pragma once

#include "reactors/group_bucket.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace jetsource::detail {

/// FNV-1a 64-bit.
std::uint64_t fnv1a64(std::string_view s) noexcept;

class group_view {
 public:
  using clock = std::chrono::steady_clock;

  /// `incarnation`: this process's; a lease its instance name holds under another incarnation
  /// belongs to an earlier process of the name, gone since (the member key was claimed only
  /// after it stopped renewing), so it is available at once.
  group_view(std::string reactor, std::string self, std::string incarnation,
             std::uint32_t partitions, std::chrono::milliseconds lease)
      : reactor_(std::move(reactor)),
        self_(std::move(self)),
        incarnation_(std::move(incarnation)),
        partitions_(partitions),
        lease_(lease) {}

  /// One watched entry: a put (value) or a delete (nullopt).
  void apply(std::string_view key, std::optional<std::string_view> value, std::uint64_t revision,
             clock::time_point now);

  struct seen_lease {
    lease_value value;
    std::uint64_t revision = 0;
    clock::time_point since{};  // when this observer saw `revision` first
  };
  struct seen_park {
    park_value value;
    std::uint64_t revision = 0;
  };

  /// The live members (this one always), by instance.
  std::vector<std::string> live_members(clock::time_point now) const;
  /// The live member with the highest fnv1a64("<reactor>/<p>/<instance>").
  std::string target(std::uint32_t p, clock::time_point now) const;
  /// nullopt: no lease key yet.
  const seen_lease* lease(std::uint32_t p) const;
  /// Free (no holder), held by an earlier process of this instance name, or unchanged for
  /// `lease` on this observer's clock.
  bool lease_available(std::uint32_t p, clock::time_point now) const;
  const std::map<std::string, seen_park>& parks() const noexcept { return parks_; }
  bool member_live(std::string_view instance, clock::time_point now) const;

 private:
  struct seen_member {
    std::uint64_t revision = 0;
    clock::time_point since{};
  };
  std::string reactor_, self_, incarnation_;
  std::uint32_t partitions_;
  std::chrono::milliseconds lease_;
  std::map<std::string, seen_member, std::less<>> members_;
  std::map<std::uint32_t, seen_lease> leases_;
  std::map<std::string, seen_park> parks_;
};

}  // namespace jetsource::detail
