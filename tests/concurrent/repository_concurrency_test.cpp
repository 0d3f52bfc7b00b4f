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
