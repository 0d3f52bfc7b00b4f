// Queue mode's retries under TSan (label concurrent; ADR 0014, "Queue mode"): a failing delivery
// waits for its next attempt as a delayed task of its worker (keyed_workers::post_after), so the
// same worker handles the other deliveries meanwhile, and a stopping member hands the waiting
// delivery back at once (-NAK) instead of waiting for it or for AckWait.
#include "reactor_fixture.hpp"

#include <atomic>

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;

// Queue mode: a failing delivery waits for its retry as a delayed task, so one worker keeps
// handling the other deliveries meanwhile (it slept through the backoff before).
TEST_F(reactor_test, QueueModeRetryBackoffDoesNotHoldUpOtherDeliveries) {
  std::atomic<int> bad_calls{0};
  recorder rec;
  auto fail = [&](const reaction_context& cx) {
    if (cx.aggregate_id() != "bad") return false;
    ++bad_calls;
    return true;
  };
  run("bad", bank::open_account{"b", 0});  // the first delivery: it fails every time
  auto expected = open_accounts("f-", 40);
  auto o = options("one");
  o.mode = delivery::queue;
  o.workers = 1;
  o.retry.attempts = 3;
  o.retry.first_backoff = milliseconds(3000);  // each wait is 1.5 .. 3 s
  o.retry.max_backoff = milliseconds(3000);
  auto m = reactor_member::start(*conn_, audit_reactor(rec, "one", "work", fail), o);
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until([&] { return covers(rec.events(), expected); }, milliseconds(20000)));
  EXPECT_LT(bad_calls.load(), 3) << "the other deliveries waited for the failing one's retries";
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*conn_, "TEST", "work");
        return st && st->dead_letters == 1;
      },
      milliseconds(20000)));
  EXPECT_EQ(bad_calls.load(), 3);
  ASSERT_TRUE(m->stop());
}

// Queue mode: stop() does not wait for a delivery's backoff; the delivery goes back to the server
// at once (-NAK), so the next member gets it without waiting for AckWait.
TEST_F(reactor_test, QueueModeStopHandsAWaitingRetryBackAtOnce) {
  std::atomic<int> bad_calls{0};
  std::atomic<bool> sink_down{true};
  recorder rec;
  auto fail = [&](const reaction_context& cx) {
    if (cx.aggregate_id() != "bad") return false;
    ++bad_calls;
    return sink_down.load();
  };
  run("bad", bank::open_account{"b", 0});
  auto o = options("one");
  o.mode = delivery::queue;
  o.retry.attempts = 5;
  o.retry.first_backoff = milliseconds(20000);
  o.retry.max_backoff = milliseconds(20000);
  auto m = reactor_member::start(*conn_, audit_reactor(rec, "one", "work", fail), o);
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until([&] { return bad_calls.load() == 1; }, milliseconds(10000)));
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(m->stop());
  EXPECT_LT(std::chrono::steady_clock::now() - asked, milliseconds(3000))
      << "stop() waited for the retry's backoff";
  sink_down = false;
  auto again = reactor_member::start(*conn_, audit_reactor(rec, "two", "work", fail), o);
  ASSERT_TRUE(again) << again.error();
  ASSERT_TRUE(wait_until([&] { return rec.size() == 1; }, milliseconds(10000)))
      << "the waiting delivery did not come back before AckWait";
  EXPECT_EQ(rec.events().at(0).id, "bad");
  EXPECT_EQ(rec.events().at(0).instance, "two");
  ASSERT_TRUE(again->stop());
}

}  // namespace
}  // namespace jetsource::test
