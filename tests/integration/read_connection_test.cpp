// The read connection (connection_options::separate_read_connection, nats/caller_reads.hpp):
// aggregates' heads are read on a second connection whose socket the loading thread reads
// itself. Against real nats-servers: loads use it (and only it); it stays up while idle, also when
// the server pings often; it comes back after the server restarts; without it (turned off, or
// refused by the server) heads are read on the connection itself.
#include "configured_server.hpp"
#include "nats/caller_reads.hpp"
#include "nats/handles.hpp"
#include "nats_fixture.hpp"
#include "test_domain.hpp"

#include <jetsource/repository.hpp>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

struct counts {
  std::uint64_t out_msgs = 0, reconnects = 0;
};

counts counts_of(natsConnection* nc) {
  natsStatistics* stats = nullptr;
  EXPECT_EQ(natsStatistics_Create(&stats), NATS_OK);
  EXPECT_EQ(natsConnection_GetStats(nc, stats), NATS_OK);
  counts c;
  EXPECT_EQ(natsStatistics_GetCounts(stats, nullptr, nullptr, &c.out_msgs, nullptr, &c.reconnects),
            NATS_OK);
  natsStatistics_Destroy(stats);
  return c;
}

using accounts_repo = repository<bank::account>;

// The tests' store on `c` (a test failure, and nullopt, when it does not open).
std::optional<event_store> test_store(const connection& c) {
  auto s = event_store::open(c, {.stream = "TEST", .subject_prefix = "test"});
  EXPECT_TRUE(s) << s.error();
  if (!s) return std::nullopt;
  return std::move(s).value();
}

// Opens account `id` with a deposit (2 events); returns its loaded version (0 on failure).
std::uint64_t write_then_load(event_store& store, const std::string& id) {
  accounts_repo accounts{store};
  auto created = accounts.execute(id, bank::open_account{"owner", 10});
  EXPECT_TRUE(created) << created.error();
  auto l = accounts.load(id);
  EXPECT_TRUE(l) << l.error();
  return l ? l->version : 0;
}

// Connects with `o`, expecting no read connection, and loads an aggregate it writes.
void expect_loads_on_one_connection(const connection_options& o) {
  auto c = connection::connect(o);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(detail::state_of(*c)->reads_nc, nullptr);
  auto store = test_store(*c);
  ASSERT_TRUE(store);
  EXPECT_EQ(write_then_load(*store, "acc-1"), 2u);
}

class ReadConnectionTest : public nats_test {};

TEST_F(ReadConnectionTest, HeadsAreReadOnTheSecondConnectionAndNothingElseIs) {
  auto store = open_store();
  accounts_repo accounts{store};
  ASSERT_TRUE(accounts.execute("acc-1", bank::open_account{"owner", 0}));
  auto& st = *detail::state_of(*conn_);
  ASSERT_NE(st.reads_nc, nullptr) << "no read connection";
  const auto main_before = counts_of(st.nc.get()), reads_before = counts_of(st.reads_nc.get());
  constexpr int loads = 20;
  for (int i = 0; i < loads; ++i) {
    auto l = accounts.load("acc-1");
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->version, 1u);
  }
  EXPECT_EQ(counts_of(st.reads_nc.get()).out_msgs - reads_before.out_msgs,
            static_cast<std::uint64_t>(loads));  // one direct get a load
  EXPECT_EQ(counts_of(st.nc.get()).out_msgs, main_before.out_msgs);
}

TEST_F(ReadConnectionTest, LoadsFromSeveralThreadsAtOnceEachGetTheirOwnAggregate) {
  auto store = open_store();
  accounts_repo accounts{store};
  constexpr int threads = 4, each = 50;
  for (int t = 0; t < threads; ++t) {  // acc-<t> at version t + 1
    const auto id = "acc-" + std::to_string(t);
    ASSERT_TRUE(accounts.execute(id, bank::open_account{"owner", 0}));
    for (int i = 0; i < t; ++i) ASSERT_TRUE(accounts.execute(id, bank::deposit{1, "d"}));
  }
  std::vector<int> wrong(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        auto l = accounts.load("acc-" + std::to_string(t));
        wrong[static_cast<std::size_t>(t)] += !l || l->version != static_cast<std::uint64_t>(t + 1);
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(wrong[static_cast<std::size_t>(t)], 0) << t;
}

TEST_F(ReadConnectionTest, LoadsGoOnAfterTheServerRestarts) {
  auto store = open_store();
  ASSERT_EQ(write_then_load(store, "acc-1"), 2u);
  crash_and_restart_server();
  accounts_repo accounts{store};
  result<loaded<bank::account>> l = make_error(errc::timeout, "not tried");
  for (auto until = std::chrono::steady_clock::now() + 20s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(100ms))
    if ((l = accounts.load("acc-1"))) break;
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 2u);
  EXPECT_GE(counts_of(detail::state_of(*conn_)->reads_nc.get()).reconnects, 1u);
}

TEST_F(ReadConnectionTest, WhenTurnedOffHeadsAreReadOnTheConnection) {
  connection_options o = conn_->options();
  o.separate_read_connection = false;
  expect_loads_on_one_connection(o);
}

// The server pings every 100 ms and drops a client after one unanswered ping: an idle read
// connection (no load waiting, so no thread reading its socket) must still answer.
TEST(ReadConnectionIdle, AnIdleReadConnectionAnswersTheServersPings) {
  configured_server srv("ping_interval: \"100ms\"\nping_max: 1\n");
  ASSERT_TRUE(srv.server);
  connection_options o;
  o.urls = {srv.url()};
  o.reconnect_wait = 50ms;
  auto c = connection::connect(o);
  ASSERT_TRUE(c) << c.error();
  auto store = test_store(*c);
  ASSERT_TRUE(store);
  ASSERT_EQ(write_then_load(*store, "acc-1"), 2u);
  std::this_thread::sleep_for(1500ms);  // 15 of the server's pings
  accounts_repo accounts{*store};
  auto l = accounts.load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(counts_of(detail::state_of(*c)->reads_nc.get()).reconnects, 0u) << srv.log();
}

TEST(ReadConnectionRefused, WhenTheServerRefusesASecondConnectionHeadsAreReadOnTheFirst) {
  configured_server srv("max_connections: 1\n");
  ASSERT_TRUE(srv.server);
  connection_options o;
  o.urls = {srv.url()};
  expect_loads_on_one_connection(o);
}

// The first connect's retrying is not the second's: a refusal must not block connect().
TEST(ReadConnectionRefused, ARefusedSecondConnectionIsNotRetriedWhenTheFirstWas) {
  configured_server srv("max_connections: 1\n");
  ASSERT_TRUE(srv.server);
  connection_options o;
  o.urls = {srv.url()};
  o.retry_on_failed_connect = true;
  expect_loads_on_one_connection(o);
}

}  // namespace
}  // namespace jetsource::test
