// The read side's engine parts against a real nats-server (projections/src): the pull fetcher
// (requests, deliveries, status messages, reset) and consumer administration (the file's mark
// decides whether a consumer may be bound; the stream a file belongs to). The ack tracker and
// the keyed workers have server-less tests (unit/ack_tracker_test, concurrent/keyed_workers_test).
#include "consumer_admin.hpp"
#include "pull_fetcher.hpp"

#include "projector_fixture.hpp"

#include <nats/nats.h>

#include <atomic>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;
using detail::pull_fetcher;

class engine_parts_test : public projector_test {
 protected:
  detail::connection_state& state() { return *detail::state_of(*conn_); }
  projection proj() { return balances_projection(); }
  projector_options opts(const std::string& consumer) {
    auto o = options("parts.db");
    o.consumer = consumer;
    return o;
  }
  // Pulls until `n` deliveries arrived (bounded); acks nothing.
  std::vector<std::uint64_t> pull_all(pull_fetcher& f, std::size_t n) {
    std::vector<std::uint64_t> seqs;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (seqs.size() < n && std::chrono::steady_clock::now() < deadline) {
      f.request(2, 200ms);
      pull_fetcher::delivery d;
      if (f.next(d) == pull_fetcher::outcome::message) {
        EXPECT_NE(natsMsg_GetDataLength(d.msg.get()), 0);
        seqs.push_back(d.meta.n.stream_sequence);
      }
    }
    return seqs;
  }
};

TEST_F(engine_parts_test, PullFetcherDeliversInStreamOrderAndForgetsAnsweredRequests) {
  std::uint64_t last = 0;
  for (int i = 0; i < 5; ++i) last = run("acc-" + std::to_string(i), bank::open_account{"o", 1});
  ASSERT_TRUE(detail::create_consumer(state(), "TEST", "parts", proj(), opts("parts"),
                                      detail::ack_mode::cumulative, 1));
  auto f = pull_fetcher::open(detail::state_of(*conn_)->nc.get(), "TEST", "parts", "balances");
  ASSERT_TRUE(f) << f.error();
  auto seqs = pull_all(*f, 5);
  ASSERT_EQ(seqs.size(), 5u);
  for (std::size_t i = 1; i < seqs.size(); ++i) EXPECT_LT(seqs[i - 1], seqs[i]);
  EXPECT_EQ(seqs.back(), last);
  // Nothing more: the server answers the outstanding requests (404/408) or they expire; either
  // way the fetcher forgets them and owes nothing.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  pull_fetcher::delivery d;
  while ((f->requests() > 0 || f->outstanding() > 0) && std::chrono::steady_clock::now() < deadline)
    EXPECT_NE(f->next(d), pull_fetcher::outcome::message);
  EXPECT_EQ(f->requests(), 0u);
  EXPECT_EQ(f->outstanding(), 0u);
}

TEST_F(engine_parts_test, PullFetcherResetDropsWhatTheOldConsumerSent) {
  for (int i = 0; i < 3; ++i) run("acc-" + std::to_string(i), bank::open_account{"o", 1});
  ASSERT_TRUE(detail::create_consumer(state(), "TEST", "parts", proj(), opts("parts"),
                                      detail::ack_mode::cumulative, 1));
  auto f = pull_fetcher::open(detail::state_of(*conn_)->nc.get(), "TEST", "parts", "balances");
  ASSERT_TRUE(f) << f.error();
  f->request(10, 2s);
  std::this_thread::sleep_for(300ms);  // the three deliveries wait in the subscription
  f->reset();
  EXPECT_EQ(f->requests(), 0u);
  pull_fetcher::delivery d;
  for (int i = 0; i < 10; ++i) EXPECT_NE(f->next(d), pull_fetcher::outcome::message);
}

// stop() wakes the fetcher with a pull request the server answers at once (no_wait): with nothing
// to deliver, its 404 ends the wait as nothing, and leaves the requests and what they still owe
// as they were.
TEST_F(engine_parts_test, PullFetcherWokenFromAnotherThreadReturnsNothingAndOwesTheSame) {
  ASSERT_TRUE(detail::create_consumer(state(), "TEST", "parts", proj(), opts("parts"),
                                      detail::ack_mode::cumulative, 1));
  auto f = pull_fetcher::open(detail::state_of(*conn_)->nc.get(), "TEST", "parts", "balances");
  ASSERT_TRUE(f) << f.error();
  f->request(10, 30s);
  std::thread([&] { f->wake(); }).join();
  pull_fetcher::delivery d;
  EXPECT_EQ(f->next(d, 10s), pull_fetcher::outcome::nothing);
  EXPECT_FALSE(d.msg);
  EXPECT_EQ(f->requests(), 1u);
  EXPECT_EQ(f->outstanding(), 10u);
  // The request still delivers what comes next.
  const auto last = run("acc-1", bank::open_account{"o", 1});
  auto seqs = pull_all(*f, 1);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs.front(), last);
}

TEST_F(engine_parts_test, BindRecreatesAConsumerThatDoesNotContinueFromTheMark) {
  std::uint64_t last = 0;
  for (int i = 0; i < 4; ++i) last = run("acc-" + std::to_string(i), bank::open_account{"o", 1});
  auto o = opts("parts");
  // Created to start at 3 (a rebuild's switch), nothing acknowledged yet: only a file at mark 2
  // may use it; a new file (mark 0) gets it recreated from 1.
  ASSERT_TRUE(detail::create_consumer(state(), "TEST", "parts", proj(), o,
                                      detail::ack_mode::cumulative, 3));
  auto start_of = [&] {
    detail::consumer_info_ptr holder;
    auto ci = detail::consumer_info(state(), "TEST", "parts", holder);
    EXPECT_TRUE(ci) << ci.error();
    return ci ? std::pair{(*ci)->Config->DeliverPolicy, (*ci)->Config->OptStartSeq}
              : std::pair{js_DeliverAll, std::uint64_t{0}};
  };
  ASSERT_TRUE(detail::bind_consumer(state(), "parts", proj(), o, 2));
  EXPECT_EQ(start_of().second, 3u) << "bound as it was";
  ASSERT_TRUE(detail::bind_consumer(state(), "parts", proj(), o, 0));
  EXPECT_EQ(start_of().first, js_DeliverAll) << "recreated from sequence 1";
  // An ack floor beyond the file's mark belongs to another file.
  auto f = pull_fetcher::open(detail::state_of(*conn_)->nc.get(), "TEST", "parts", "balances");
  ASSERT_TRUE(f);
  f->request(10, 1s);
  pull_fetcher::delivery d;
  std::uint64_t acked = 0;
  for (int i = 0; i < 100 && acked < last; ++i)
    if (f->next(d) == pull_fetcher::outcome::message) {
      acked = d.meta.n.stream_sequence;
      natsConnection_PublishString(detail::state_of(*conn_)->nc.get(),
                                   natsMsg_GetReply(d.msg.get()), "+ACK");
    }
  ASSERT_EQ(acked, last);
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(detail::bind_consumer(state(), "parts", proj(), o, 1));
  auto [policy, start] = start_of();
  EXPECT_EQ(policy, js_DeliverByStartSequence);
  EXPECT_EQ(start, 2u) << "recreated from the file's mark + 1";
}

TEST_F(engine_parts_test, AFileBelongsToTheStreamItWasBuiltFrom) {
  run("acc-1", bank::open_account{"o", 1});
  auto s = detail::identify_stream(state(), "TEST");
  ASSERT_TRUE(s) << s.error();
  EXPECT_GT(s->created, 0);
  EXPECT_TRUE(detail::check_stream(proj(), "TEST", 0, s->last_sequence, *s));
  EXPECT_TRUE(detail::check_stream(proj(), "TEST", s->created, s->last_sequence, *s));
  auto other = detail::check_stream(proj(), "TEST", s->created + 1, 1, *s);
  ASSERT_FALSE(other);
  EXPECT_TRUE(other.error().is(errc::stream_config_mismatch));
  EXPECT_NE(other.error().message.find("created again"), std::string::npos);
  auto beyond = detail::check_stream(proj(), "TEST", s->created, s->last_sequence + 5, *s);
  ASSERT_FALSE(beyond);
  EXPECT_NE(beyond.error().message.find("lost messages"), std::string::npos);
  auto missing = detail::identify_stream(state(), "NOPE");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found));
}

// nats.c 3.4.1's reader thread uses a subscription it looked up without a reference: one
// unsubscribed and destroyed at once while messages still arrive can be freed under it. With
// retire's flush removed, this test crashed the reader (SEGV in natsConn_processMsg under ASan)
// in 3 runs of 3. Every subscription the libraries end while it may still receive (the pull
// fetcher's inbox, ordered consumers through the reaper, a timed-out paired get, a backup's
// ordered consumer) goes through retire.
TEST_F(engine_parts_test, ASubscriptionRetiredWhileMessagesPourInIsNeverUsedAfterItIsFreed) {
  natsConnection* raw = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&raw, server_->url().c_str()), NATS_OK);
  detail::connection_ptr publisher(raw);
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    while (!stop.load())
      for (int i = 0; i < 64; ++i) natsConnection_PublishString(publisher.get(), "flood", "x");
  });
  natsConnection* nc = state().nc.get();
  int rounds_delivered = 0;
  for (int round = 0; round < 400; ++round) {
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_SubscribeSync(&sub, nc, "flood"), NATS_OK);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, sub, 2000) == NATS_OK) ++rounds_delivered;
    natsMsg_Destroy(m);
    detail::retire(nc, detail::subscription_ptr(sub));
  }
  stop = true;
  flood.join();
  EXPECT_EQ(rounds_delivered, 400) << "each subscription was receiving when it was retired";
  EXPECT_EQ(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
}

}  // namespace
}  // namespace jetsource::test
