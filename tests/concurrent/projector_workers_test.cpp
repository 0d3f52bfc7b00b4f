// Keyed workers under load (also run under ThreadSanitizer): W=4 over interleaved aggregates,
// every aggregate's events applied in order, exactly once, with small group commits.
#include "projector_fixture.hpp"

#include <atomic>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

TEST_F(projector_test, FourWorkersApplyInterleavedAggregatesInOrder) {
  constexpr int accounts = 60, deposits = 15;
  // Appends run while the projector applies, from two threads, interleaving the aggregates.
  auto o = options("balances.db", 4);
  o.max_group = 7;  // many small transactions: more interleaving between workers
  o.batch = 50;
  auto p = start(o);
  std::atomic<std::uint64_t> last{0};
  auto writer = [&](int first) {
    for (int round = 0; round <= deposits; ++round)
      for (int a = first; a < accounts; a += 2) {
        auto id = "acc-" + std::to_string(a);
        auto seq = round == 0 ? run(id, bank::open_account{"o" + std::to_string(a), 0})
                              : run(id, bank::deposit{round, ""});
        auto prev = last.load();
        while (seq > prev && !last.compare_exchange_weak(prev, seq)) {
        }
      }
  };
  std::thread w1(writer, 0), w2(writer, 1);
  // Read-your-writes and status from another thread while it runs.
  std::thread reader([&] {
    for (int i = 0; i < 20; ++i) {
      auto s = p.status();
      EXPECT_TRUE(s) << s.error();
      (void)p.wait_for(last.load(), 100ms);
    }
  });
  w1.join();
  w2.join();
  reader.join();
  ASSERT_TRUE(p.wait_for(last.load(), 30s));
  auto rows = balances(dir_.path() / "balances.db");
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(accounts));
  for (const auto& [id, owner, cents, version, count] : rows) {
    EXPECT_EQ(cents, deposits * (deposits + 1) / 2) << id;
    EXPECT_EQ(version, deposits + 1) << id;
    EXPECT_EQ(count, deposits) << id;
  }
  auto st = p.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->events_applied, static_cast<std::uint64_t>(accounts * (deposits + 1)));
  EXPECT_EQ(st->dead_letters, 0u);
  ASSERT_TRUE(p.stop());
}

}  // namespace
}  // namespace jetsource::test
