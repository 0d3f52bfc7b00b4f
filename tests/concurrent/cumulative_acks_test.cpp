// Cumulative acks (AckPolicy All, the default; also run under ThreadSanitizer): one ack per
// advance of the applied mark still acknowledges everything, survives a restart, and deliveries
// lost on the way (here: taken by another puller) make the projector start its consumer over
// instead of acknowledging events it never applied. No acks (AckPolicy None, what rebuilds use):
// the mark alone is the position, and lost deliveries, the last ones too, are found and fetched
// again from it.
#include "projector_fixture.hpp"
#include "subject_watcher.hpp"

#include <memory>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

class cumulative_acks_test : public projector_test {
 protected:
  projector_options cumulative(int workers = 4) {
    auto o = options("balances.db", workers);
    o.cumulative_acks = true;
    o.max_group = 5;  // many group commits: many advances of the mark
    return o;
  }
  // Every account opened with 0 and given deposits 1..n: balance n(n+1)/2, version n + 1.
  std::uint64_t seed(int accounts, int deposits) {
    std::uint64_t last = 0;
    for (int a = 0; a < accounts; ++a) last = run(id(a), bank::open_account{"o", 0});
    for (int d = 1; d <= deposits; ++d)
      for (int a = 0; a < accounts; ++a) last = run(id(a), bank::deposit{d, ""});
    return last;
  }
  void expect_balances(int accounts, int deposits) {
    auto rows = balances(dir_.path() / "balances.db");
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(accounts));
    for (const auto& [account, owner, cents, version, count] : rows) {
      EXPECT_EQ(cents, deposits * (deposits + 1) / 2) << account;
      EXPECT_EQ(version, deposits + 1) << account;
      EXPECT_EQ(count, deposits) << account;
    }
  }
  // Polls until the consumer's ack floor reaches `seq` (the ack follows the commit).
  bool acked_up_to(std::uint64_t seq) {
    for (int i = 0; i < 100; ++i) {
      auto c = consumer(live_consumer());
      if (c.ack_floor >= seq && c.ack_pending == 0) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  static std::string id(int a) { return "acc-" + std::to_string(a); }
  // Another puller on the projector's consumer asks for `batch` deliveries and waits for them:
  // whatever it is given, the projector never sees.
  std::unique_ptr<subject_watcher> steal(int batch) {
    auto rogue = std::make_unique<subject_watcher>(server_->url(), "rogue.inbox");
    const std::string pull = R"({"batch":)" + std::to_string(batch) + R"(,"expires":20000000000})";
    const std::string next = "$JS.API.CONSUMER.MSG.NEXT.TEST." + live_consumer();
    EXPECT_EQ(natsConnection_PublishRequestString(rogue->connection(), next.c_str(), "rogue.inbox",
                                                  pull.c_str()),
              NATS_OK);
    EXPECT_EQ(natsConnection_Flush(rogue->connection()), NATS_OK);
    return rogue;
  }
  static int stolen(subject_watcher& rogue, std::chrono::milliseconds wait) {
    int n = 0;
    while (natsMsg* m = rogue.next(wait)) {
      if (natsMsg_GetDataLength(m) > 0) ++n;
      natsMsg_Destroy(m);
    }
    return n;
  }
};

TEST_F(cumulative_acks_test, OneAckPerMarkAcknowledgesEverythingAndSurvivesARestart) {
  auto last = seed(12, 8);
  {
    auto p = start(cumulative());
    ASSERT_TRUE(p.wait_for(last, 30s));
    EXPECT_TRUE(acked_up_to(last)) << "ack floor " << consumer(live_consumer()).ack_floor;
    EXPECT_TRUE(consumer(live_consumer()).ack_all);
    ASSERT_TRUE(p.stop());
  }
  expect_balances(12, 8);
  // Appended while stopped; a restart asking for per-message acks keeps the consumer's policy.
  for (int a = 0; a < 12; ++a) last = run(id(a), bank::deposit{9, ""});
  auto o = options("balances.db");
  o.cumulative_acks = false;
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last, 30s));
  EXPECT_TRUE(acked_up_to(last));
  EXPECT_TRUE(consumer(live_consumer()).ack_all);
  expect_balances(12, 9);
  auto st = p.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->dead_letters, 0u);
}

TEST_F(cumulative_acks_test, PerMessageAcksWhenAsked) {
  auto last = seed(12, 8);
  auto o = cumulative();
  o.cumulative_acks = false;
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last, 30s));
  EXPECT_TRUE(acked_up_to(last));
  EXPECT_FALSE(consumer(live_consumer()).ack_all);
  expect_balances(12, 8);
}

TEST_F(cumulative_acks_test, LostDeliveriesStartTheConsumerOverInsteadOfBeingAcked) {
  auto last = seed(6, 2);
  auto o = cumulative(2);
  o.pull_expires = 200ms;
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last, 30s));

  // Another puller on the same consumer takes deliveries and never acks them: to the
  // projector they are deliveries lost on the way.
  auto rogue = steal(3);
  std::this_thread::sleep_for(1s);  // the projector's own requests expire and queue behind it

  for (int d = 3; d <= 6; ++d)
    for (int a = 0; a < 6; ++a) last = run(id(a), bank::deposit{d, ""});
  // The projector notices the first gap and recreates the consumer: the other puller's request
  // dies with the old one, so it gets one delivery or more, not necessarily three.
  EXPECT_GE(stolen(*rogue, 2s), 1) << "the other puller should have taken deliveries";
  rogue.reset();

  ASSERT_TRUE(p.wait_for(last, 30s));
  expect_balances(6, 6);  // the three taken deposits were applied all the same
  EXPECT_TRUE(acked_up_to(last));
  ASSERT_TRUE(p.stop());
}

TEST_F(cumulative_acks_test, UnacknowledgedConsumerAppliesEverythingAndResumesFromTheMark) {
  auto last = seed(12, 8);
  auto o = cumulative();
  o.unacknowledged = true;
  {
    // Slowly applied: the server has delivered everything long before it is committed, and the
    // status must not read "nothing pending" meanwhile (its backlog adds what was fetched).
    hooks().delay_us = 30'000;
    auto p = start(o);
    int samples = 0;
    for (;;) {
      auto st = p.status();
      ASSERT_TRUE(st) << st.error();
      if (st->last_applied_seq >= last) break;
      // "Nothing pending" only once everything is committed: the mark follows within moments
      // (the fetcher moves it after the workers' commits), not after seconds of applying.
      if (st->pending == 0) {
        EXPECT_TRUE(p.wait_for(last, 200ms)) << "nothing pending at " << st->last_applied_seq;
      }
      if (st->last_applied_seq + 10 < last) ++samples;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_GE(samples, 2) << "the catch-up was too quick to sample";
    hooks().delay_us = 0;
    ASSERT_TRUE(p.wait_for(last, 30s));
    auto c = consumer(live_consumer());
    EXPECT_TRUE(c.ack_none) << "a new consumer should get AckPolicy None";
    EXPECT_EQ(c.ack_pending, 0u);
    ASSERT_TRUE(p.stop());
  }
  expect_balances(12, 8);
  for (int a = 0; a < 12; ++a) last = run(id(a), bank::deposit{9, ""});
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last, 30s));
  expect_balances(12, 9);
  EXPECT_TRUE(consumer(live_consumer()).ack_none);
  auto st = p.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->dead_letters, 0u);
}

TEST_F(cumulative_acks_test, UnacknowledgedConsumerFetchesItsLastDeliveryAgainWhenItIsLost) {
  auto last = seed(6, 2);
  auto o = cumulative(2);
  o.unacknowledged = true;
  o.pull_expires = 200ms;
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last, 30s));

  // The other puller's request waits first in line; the projector's own requests expire and
  // queue behind it. The last deposit goes to it: no later delivery shows a jump in the
  // consumer's numbering, and with AckPolicy None the server never sends it again.
  auto rogue = steal(1);
  std::this_thread::sleep_for(1s);
  last = run(id(0), bank::deposit{3, ""});

  // wait_for() does not take the consumer's "nothing pending" for "applied"; the watcher finds
  // the consumer's delivered count above what arrived (two looks a second apart) and the
  // fetcher makes it again from the mark.
  ASSERT_TRUE(p.wait_for(last, 30s));
  ASSERT_EQ(stolen(*rogue, 1s), 1) << "the other puller should have taken the last delivery";
  rogue.reset();
  auto rows = balances(dir_.path() / "balances.db");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& [account, owner, cents, version, count] : rows) {
    const int deposits = account == id(0) ? 3 : 2;
    EXPECT_EQ(cents, deposits * (deposits + 1) / 2) << account;
    EXPECT_EQ(version, deposits + 1) << account;
  }
  ASSERT_TRUE(p.stop());
}

}  // namespace
}  // namespace jetsource::test
