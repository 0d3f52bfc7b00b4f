// Loads from several threads on the read connection (ADR 0023: one thread reads its socket for
// all, the others wait for its reads or take over; nats/caller_reads.hpp) while a writer moves
// the aggregates' heads on: every load sees a version at least the one it saw before, and at the
// end the last one written. Run under TSan too (the concurrent label).
#include <jetsource/repository.hpp>

#include "nats_fixture.hpp"
#include "test_domain.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace bank;

namespace {

class ReadConnectionConcurrencyTest : public jetsource::test::nats_test {};

TEST_F(ReadConnectionConcurrencyTest, LoadsRacingAWriterNeverGoBackAndEndAtTheLastCommit) {
  auto store = open_store();
  jetsource::repository<account> writer{store};
  constexpr int readers = 4, deposits = 60;
  for (int r = 0; r < readers; ++r)
    ASSERT_TRUE(writer.execute("acc-" + std::to_string(r), open_account{"ada"}));
  std::atomic<bool> writing{true};
  std::atomic<int> wrong{0};
  std::vector<std::thread> pool;
  for (int r = 0; r < readers; ++r)
    pool.emplace_back([&, r] {
      jetsource::repository<account> reader{store};
      const auto id = "acc-" + std::to_string(r);
      std::uint64_t seen = 0;
      auto check = [&] {
        auto l = reader.load(id);
        if (!l || l->version < seen) {
          ADD_FAILURE() << id << ": " << (l ? std::to_string(l->version) : l.error().message)
                        << " after " << seen;
          ++wrong;
          return;
        }
        seen = l->version;
      };
      while (writing.load()) check();
      check();
      if (seen != 1 + deposits) {
        ADD_FAILURE() << id << " ended at " << seen;
        ++wrong;
      }
    });
  for (int i = 0; i < deposits; ++i)
    for (int r = 0; r < readers; ++r)  // not ASSERT: the readers must be joined
      EXPECT_TRUE(writer.execute("acc-" + std::to_string(r), deposit{1, std::to_string(i)}));
  writing = false;
  for (auto& th : pool) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
