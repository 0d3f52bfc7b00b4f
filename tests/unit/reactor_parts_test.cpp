// Pure parts of the reactor engine (ADR 0014): the group view's liveness by the observer's
// clock, rendezvous hashing, lease availability; the bucket's values and keys; the subject's
// partition token. No server.
#include "reactors/group_view.hpp"
#include "reactors/member_state.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace {

using namespace jetsource::detail;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::string lease_json(const std::string& holder, std::uint64_t epoch, std::uint64_t cp,
                       const std::string& incarnation = "i1") {
  return encode(lease_value{holder, incarnation, epoch, cp, "t"});
}

TEST(ReactorPartsTest, AMemberIsLiveWhileItsRevisionChangesByTheObserversClock) {
  group_view v("r", "me", "inc", 8, 1000ms);
  const auto t0 = clock_type::now();
  v.apply("member.other", std::string_view("{}"), 5, t0);
  EXPECT_TRUE(v.member_live("other", t0 + 999ms));
  EXPECT_FALSE(v.member_live("other", t0 + 1000ms));
  v.apply("member.other", std::string_view("{}"), 5, t0 + 900ms);  // same revision: no renewal
  EXPECT_FALSE(v.member_live("other", t0 + 1000ms));
  v.apply("member.other", std::string_view("{}"), 6, t0 + 950ms);  // renewed
  EXPECT_TRUE(v.member_live("other", t0 + 1900ms));
  v.apply("member.other", std::nullopt, 7, t0 + 1000ms);  // a graceful stop deletes the key
  EXPECT_FALSE(v.member_live("other", t0 + 1000ms));
  EXPECT_TRUE(v.member_live("me", t0 + 1h)) << "a member is always live to itself";
}

TEST(ReactorPartsTest, RendezvousHashingAgreesAndMovesFewPartitionsWhenAMemberJoins) {
  const auto t0 = clock_type::now();
  auto view = [&](const std::string& self, std::vector<std::string> others) {
    group_view v("audit", self, "inc", 64, 1000ms);
    for (const auto& o : others) v.apply("member." + o, std::string_view("{}"), 1, t0);
    return v;
  };
  auto a = view("a", {"b", "c"}), b = view("b", {"a", "c"});
  std::map<std::string, int> share;
  for (std::uint32_t p = 0; p < 64; ++p) {
    EXPECT_EQ(a.target(p, t0), b.target(p, t0)) << "every member computes the same target";
    ++share[a.target(p, t0)];
  }
  EXPECT_EQ(share.size(), 3u);
  auto joined = view("a", {"b", "c", "d"});
  int moved = 0;
  for (std::uint32_t p = 0; p < 64; ++p)
    if (joined.target(p, t0) != a.target(p, t0)) {
      ++moved;
      EXPECT_EQ(joined.target(p, t0), "d") << "only partitions going to the new member move";
    }
  EXPECT_GT(moved, 5);
  EXPECT_LT(moved, 30);
  for (const auto& [name, n] : share) EXPECT_GT(n, 10) << name << " has too small a share";
}

TEST(ReactorPartsTest, ALeaseIsAvailableWhenFreeExpiredOrOfAnEarlierProcessOfThisName) {
  group_view v("r", "me", "inc-2", 4, 1000ms);
  const auto t0 = clock_type::now();
  EXPECT_TRUE(v.lease_available(0, t0)) << "no lease key yet";
  v.apply("lease.0", std::string_view(lease_json("other", 3, 40)), 10, t0);
  EXPECT_FALSE(v.lease_available(0, t0 + 999ms));
  EXPECT_TRUE(v.lease_available(0, t0 + 1000ms)) << "unchanged for a lease: expired";
  v.apply("lease.0", std::string_view(lease_json("", 3, 41)), 11, t0 + 10ms);
  EXPECT_TRUE(v.lease_available(0, t0 + 10ms)) << "released";
  v.apply("lease.1", std::string_view(lease_json("me", 2, 5, "inc-1")), 12, t0);
  EXPECT_TRUE(v.lease_available(1, t0)) << "held by an earlier process of this name";
  ASSERT_NE(v.lease(0), nullptr);
  EXPECT_EQ(v.lease(0)->value.checkpoint, 41u);
  EXPECT_EQ(v.lease(0)->value.epoch, 3u);
}

TEST(ReactorPartsTest, ALeaseReadAheadOfTheWatchIsNotUndoneByTheWatchCatchingUp) {
  // The keeper reads a lease key itself after a refused acquisition (its watch may lag): the
  // older revisions the watch then delivers must not bring back the lease it replaced.
  group_view v("r", "me", "inc", 4, 1000ms);
  const auto t0 = clock_type::now();
  v.apply("lease.2", std::string_view(lease_json("other", 4, 100)), 20, t0);
  v.apply("lease.2", std::string_view(lease_json("", 4, 180)), 31, t0 + 5ms);  // read directly
  v.apply("lease.2", std::string_view(lease_json("other", 4, 150)), 25, t0 + 10ms);  // the watch
  ASSERT_NE(v.lease(2), nullptr);
  EXPECT_EQ(v.lease(2)->revision, 31u);
  EXPECT_EQ(v.lease(2)->value.checkpoint, 180u);
  EXPECT_TRUE(v.lease_available(2, t0 + 10ms)) << "released, as the newest revision says";
  v.apply("lease.2", std::string_view(lease_json("", 4, 180)), 31, t0 + 20ms);  // seen again
  EXPECT_EQ(v.lease(2)->since, t0 + 5ms) << "a revision seen again is no change";
}

TEST(ReactorPartsTest, KeysAndValuesRoundTrip) {
  EXPECT_EQ(partition_of_key("lease.12", "lease"), 12u);
  EXPECT_EQ(partition_of_key("park.3.Account.acc-1", "park"), 3u);
  EXPECT_EQ(partition_of_key("member.x", "lease"), std::nullopt);
  park_value p;
  p.a.partition = 3;
  p.a.aggregate_type = "Account";
  p.a.aggregate_id = "acc-1";
  p.a.sequence = 77;
  p.a.version = 4;
  p.a.error = "down";
  p.a.attempts = 5;
  p.a.request = "retry";
  p.epoch = 9;
  auto back = decode_park(encode(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->a.aggregate_id, "acc-1");
  EXPECT_EQ(back->a.sequence, 77u);
  EXPECT_EQ(back->a.request, "retry");
  EXPECT_EQ(back->epoch, 9u);
  EXPECT_FALSE(decode_lease("{not json"));
  EXPECT_FALSE(validate_reactor_name("reactor", "a.b"));
  EXPECT_TRUE(validate_reactor_name("reactor", "inventory_2-x"));
  EXPECT_EQ(subject_partition("orders.Order.17.ord-1"), 17u);
  EXPECT_EQ(subject_partition("orders.Order.x.ord-1"), std::nullopt);
}

}  // namespace
