// Many writers on one aggregate: optimistic concurrency with retries keeps every accepted
// command exactly once, whether the writers share a repository or each has its own (as
// separate processes would).
#include <jetsource/repository.hpp>

#include "nats_fixture.hpp"
#include "test_domain.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <vector>

using namespace bank;
using jetsource::errc;

namespace {

class RepositoryConcurrencyTest : public jetsource::test::nats_test {
 protected:
  struct tally {
    std::atomic<std::int64_t> deposited{0}, withdrawn{0};
    std::atomic<int> accepted{0}, rejected{0}, retried{0};
  };

  // 8 threads, each running `per_thread` deposits (unique notes) and some withdrawals that may
  // be refused for insufficient funds. Every outcome is counted.
  void run_writers(bool shared_repository, tally& t) {
    auto store = open_store();
    jetsource::repository<account> shared{store};
    ASSERT_TRUE(shared.execute("acc-1", open_account{"ada"}));
    constexpr int threads = 8, per_thread = 40;
    std::vector<std::thread> pool;
    std::atomic<int> failures{0};
    for (int w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        jetsource::repository<account> own{store};
        auto& repo = shared_repository ? shared : own;
        for (int i = 0; i < per_thread; ++i) {
          bool withdrawal = i % 4 == 3;
          std::int64_t amount = 1 + (w * per_thread + i) % 7;
          auto r = withdrawal ? repo.execute("acc-1", withdraw{amount * 3})
                              : repo.execute("acc-1", deposit{amount, fmt::format("{}-{}", w, i)});
          if (r) {
            (withdrawal ? t.withdrawn : t.deposited) += withdrawal ? amount * 3 : amount;
            ++t.accepted;
            if (r->attempts > 1) ++t.retried;
          } else if (r.error().is(account_error::insufficient_funds)) {
            ++t.rejected;
          } else {
            ADD_FAILURE() << r.error();
            ++failures;
          }
        }
      });
    }
    for (auto& th : pool) th.join();
    ASSERT_EQ(failures.load(), 0);
    EXPECT_EQ(t.accepted + t.rejected, threads * per_thread);

    auto l = jetsource::repository<account>{store}.load("acc-1");
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->version, 1u + static_cast<std::uint64_t>(t.accepted.load()));
    EXPECT_EQ(l->state.balance_cents(), t.deposited - t.withdrawn);
    EXPECT_GE(l->state.balance_cents(), 0);
    // Every accepted deposit is there exactly once.
    std::map<std::string, int> seen;
    for (const auto& n : l->state.notes()) ++seen[n];
    int deposits = 0;
    for (const auto& [note, count] : seen) {
      EXPECT_EQ(count, 1) << note;
      deposits += count;
    }
    EXPECT_EQ(deposits, threads * per_thread - threads * per_thread / 4);
  }
};

TEST_F(RepositoryConcurrencyTest, EightSeparateWritersOnOneAggregate) {
  tally t;
  run_writers(false, t);
  // Separate caches must have collided and been retried.
  EXPECT_GT(t.retried.load(), 0);
}

TEST_F(RepositoryConcurrencyTest, EightThreadsSharingOneRepository) {
  tally t;
  run_writers(true, t);
}

}  // namespace

namespace {

class ExecuteAsyncTest : public jetsource::test::nats_test {};

TEST_F(ExecuteAsyncTest, PipelinedCommandsKeepPerAggregateOrderAndLandOnce) {
  auto store = open_store();
  constexpr int aggregates = 20, per_aggregate = 50, threads = 4;
  std::atomic<int> ok{0}, failed{0};
  {
    jetsource::repository<account> repo{store};
    for (int a = 0; a < aggregates; ++a)
      ASSERT_TRUE(repo.execute(fmt::format("acc-{}", a), open_account{"ada"}));
    // A second writer (its own cache, like another process) makes some commits conflict.
    std::thread rival([&] {
      jetsource::repository<account> other{store};
      for (int i = 0; i < 100; ++i)
        ASSERT_TRUE(other.execute(fmt::format("acc-{}", i % aggregates), deposit{1000, "rival"}));
    });
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (int i = 0; i < per_aggregate * aggregates / threads; ++i) {
          int n = t * (per_aggregate * aggregates / threads) + i;
          auto id = fmt::format("acc-{}", n % aggregates);
          auto started = repo.execute_async(id, deposit{1, fmt::format("{:05}", n)},
                                            [&](jetsource::result<jetsource::executed> r) {
                                              if (r) {
                                                ++ok;
                                              } else {
                                                ADD_FAILURE() << r.error();
                                                ++failed;
                                              }
                                            });
          ASSERT_TRUE(started) << started.error();
        }
      });
    }
    for (auto& th : pool) th.join();
    rival.join();
    ASSERT_TRUE(repo.flush());
  }
  EXPECT_EQ(ok.load(), aggregates * per_aggregate);
  EXPECT_EQ(failed.load(), 0);
  jetsource::repository<account> check{store};
  for (int a = 0; a < aggregates; ++a) {
    auto l = check.load(fmt::format("acc-{}", a));
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->version, 1u + per_aggregate + 100 / aggregates);
    EXPECT_EQ(l->state.balance_cents(), per_aggregate + 1000 * (100 / aggregates));
    // Each thread's commands on this aggregate were applied in the order they were started.
    std::map<int, std::string> last_by_thread;
    for (const auto& note : l->state.notes()) {
      if (note == "rival") continue;
      int n = std::stoi(note);
      int t = n / (per_aggregate * aggregates / threads);
      EXPECT_LT(last_by_thread[t], note) << "out of order on acc-" << a;
      last_by_thread[t] = note;
    }
  }
}

TEST_F(ExecuteAsyncTest, RejectionsAndInvalidIdsAreReported) {
  auto store = open_store();
  jetsource::repository<account> repo{store};
  ASSERT_TRUE(repo.execute("acc-1", open_account{"ada"}));
  std::atomic<int> rejected{0};
  ASSERT_TRUE(
      repo.execute_async("acc-1", withdraw{5}, [&](jetsource::result<jetsource::executed> r) {
        if (!r && r.error().is(account_error::insufficient_funds)) ++rejected;
      }));
  auto bad = repo.execute_async("bad id", deposit{1, ""}, [](auto) { ADD_FAILURE() << "called"; });
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(errc::invalid_id));
  ASSERT_TRUE(repo.flush());
  EXPECT_EQ(rejected.load(), 1);
}

}  // namespace
