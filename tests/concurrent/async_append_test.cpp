// Concurrency of the async append path: many commits pipelined over many aggregates, every
// outcome reported exactly once, bounded in-flight (back-pressure) and flush.
#include <jetsource/event_store.hpp>

#include "nats_fixture.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

commit make_commit(std::string id, std::uint64_t version, std::string body) {
  commit c;
  c.aggregate_type = "Order";
  c.aggregate_id = std::move(id);
  c.version = version;
  c.event_types = "order.noted.v1";
  c.body = std::move(body);
  return c;
}

class AsyncAppendTest : public nats_test {};

TEST_F(AsyncAppendTest, HundredThousandCommitsOverThousandAggregates) {
  constexpr int aggregates = 1000;
  constexpr int total = 100'000;
  auto store = open_store({.partitions = 16, .max_in_flight = 4096});
  std::atomic<int> appended{0}, failed{0}, calls{0};
  std::vector<std::atomic<int>> per_aggregate(aggregates);
  std::mutex first_error_mutex;
  std::string first_error;

  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < total; ++i) {
    int a = i % aggregates;
    auto version = static_cast<std::uint64_t>(i / aggregates + 1);
    auto r = store.append_async(
        make_commit("agg-" + std::to_string(a), version, R"({"n":)" + std::to_string(i) + "}"),
        [&, a](result<append_result> out) {
          ++calls;
          if (out && out->status == append_status::appended) {
            ++appended;
            ++per_aggregate[static_cast<std::size_t>(a)];
          } else {
            ++failed;
            std::lock_guard lock(first_error_mutex);
            if (first_error.empty())
              first_error = out ? "unexpected already_appended" : to_string(out.error());
          }
        });
    ASSERT_TRUE(r) << r.error();
  }
  auto f = store.flush(60s);
  ASSERT_TRUE(f) << f.error();
  auto took = std::chrono::steady_clock::now() - t0;
  std::printf(
      "[ info ] %d async commits acknowledged in %lld ms\n", total,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));

  EXPECT_EQ(calls.load(), total);
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(appended.load(), total);
  for (const auto& n : per_aggregate) EXPECT_EQ(n.load(), total / aggregates);
  auto last = store.last_sequence();
  ASSERT_TRUE(last) << last.error();
  EXPECT_EQ(*last, static_cast<std::uint64_t>(total));

  // A sample of aggregates reads back completely, in order, with their versions.
  auto r0 = std::chrono::steady_clock::now();
  for (int a = 0; a < aggregates; a += 97) {
    auto log = store.read("Order", "agg-" + std::to_string(a));
    ASSERT_TRUE(log) << log.error();
    ASSERT_EQ(log->commits.size(), static_cast<std::size_t>(total / aggregates));
    for (std::size_t k = 0; k < log->commits.size(); ++k) {
      const auto& c = log->commits[k];
      EXPECT_EQ(c.version, k + 1);
      EXPECT_EQ(c.body, R"({"n":)" + std::to_string(static_cast<int>(k) * aggregates + a) + "}");
    }
    EXPECT_EQ(log->head.version, static_cast<std::uint64_t>(total / aggregates));
  }
  std::printf("[ info ] read 11 aggregates x 100 commits in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - r0)
                                         .count()));
}

// A callback that holds nats.c's ack thread keeps every later ack waiting: the ninth append
// must block at max_in_flight = 8 until the first callback returns; flush times out meanwhile.
TEST_F(AsyncAppendTest, AppendBlocksAtMaxInFlight) {
  auto store = open_store({.max_in_flight = 8});
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> started{0}, done{0};
  std::thread producer([&] {
    for (int i = 0; i < 9; ++i) {
      auto r = store.append_async(make_commit("agg-" + std::to_string(i), 1, "x"),
                                  [&, i](result<append_result> out) {
                                    EXPECT_TRUE(out);
                                    if (i == 0) released.wait();
                                    ++done;
                                  });
      EXPECT_TRUE(r);
      ++started;
    }
  });
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(started.load(), 8);  // the ninth waits for a slot
  EXPECT_EQ(done.load(), 0);
  auto f = store.flush(100ms);
  ASSERT_FALSE(f);
  EXPECT_TRUE(f.error().is(errc::timeout));
  release.set_value();
  producer.join();
  EXPECT_EQ(started.load(), 9);
  ASSERT_TRUE(store.flush(10s));
  EXPECT_EQ(done.load(), 9);
}

// Several producers: at any moment at most max_in_flight appends are accepted and unreported.
TEST_F(AsyncAppendTest, OutstandingNeverExceedsMaxInFlight) {
  constexpr int limit = 8, producers = 4, per_producer = 2000;
  auto store = open_store({.max_in_flight = limit});
  std::atomic<int> accepted{0}, completed{0}, max_outstanding{0}, failures{0};
  auto note = [&] {
    int now = accepted.load() - completed.load();
    int prev = max_outstanding.load();
    while (now > prev && !max_outstanding.compare_exchange_weak(prev, now)) {
    }
  };
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        auto r = store.append_async(
            make_commit("p" + std::to_string(p) + "-" + std::to_string(i % 50), 1, "x"),
            [&](result<append_result> out) {
              if (!out) ++failures;
              ++completed;  // before the store frees the slot
            });
        ASSERT_TRUE(r) << r.error();
        ++accepted;  // after the store took the slot
        note();
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(store.flush(30s));
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(completed.load(), producers * per_producer);
  EXPECT_LE(max_outstanding.load(), limit);
  EXPECT_GE(max_outstanding.load(), 2);  // it did pipeline
  auto last = store.last_sequence();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, static_cast<std::uint64_t>(producers * per_producer));
}

// Appending again from inside a callback must not deadlock, even at the limit.
TEST_F(AsyncAppendTest, AppendFromCallbackDoesNotDeadlock) {
  auto store = open_store({.max_in_flight = 1});
  std::promise<result<append_result>> second;
  ASSERT_TRUE(store.append_async(make_commit("agg-1", 1, "first"), [&](result<append_result> r) {
    ASSERT_TRUE(r);
    auto again = store.append_async(make_commit("agg-1", 2, "second"),
                                    [&](result<append_result> r2) { second.set_value(r2); });
    EXPECT_TRUE(again);
    EXPECT_TRUE(store.flush(10ms).error().is(errc::invalid_argument));
  }));
  auto f = second.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, 2u);
  ASSERT_TRUE(store.flush(5s));
}

}  // namespace
}  // namespace jetsource::test
