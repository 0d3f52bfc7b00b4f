// The reactor engine's concurrent parts under TSan (label concurrent): three members of one
// group in one process (each with its lease keeper, cursor and workers) while events are
// appended; one member leaves gracefully and another joins, so partitions are released,
// acquired and the cursors rewound while handlers run. Every event is handled, and each
// aggregate's versions are first handled in increasing order.
#include "reactor_fixture.hpp"

#include <atomic>

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;

TEST_F(reactor_test, MembersJoiningAndLeavingKeepEveryEventAndTheOrder) {
  auto expected = open_accounts("c-", 32);
  recorder rec;
  auto start = [&](const std::string& name) {
    auto o = options(name, 900);
    o.workers = 3;
    auto m = reactor_member::start(*conn_, audit_reactor(rec, name), o);
    EXPECT_TRUE(m) << m.error();
    if (!m) std::abort();
    return std::move(m).value();
  };
  std::atomic<bool> appending{true};
  std::thread appender([&] {
    while (appending.load())
      for (auto& [id, v] : expected) {
        if (!appending.load()) break;
        if (repo_->execute(id, bank::deposit{1, "c"})) ++v;
      }
  });
  auto a = start("a");
  auto b = start("b");
  auto c = start("c");
  ASSERT_TRUE(wait_until([&] { return rec.size() > 300; }, milliseconds(30000)));
  ASSERT_TRUE(b.stop());  // hands its partitions over at once
  std::this_thread::sleep_for(milliseconds(500));
  auto d = start("d");  // takes a share from a and c: they release, d rewinds
  std::this_thread::sleep_for(milliseconds(1500));
  // Every partition is held by exactly one member once the group has settled.
  ASSERT_TRUE(wait_until(
      [&] { return a.partitions().size() + c.partitions().size() + d.partitions().size() == 64; },
      milliseconds(10000)));
  appending = false;
  appender.join();
  ASSERT_TRUE(wait_until([&] { return covers(rec.events(), expected); }, milliseconds(30000)));
  for (auto* m : {&a, &c, &d}) ASSERT_TRUE(m->stop());
  const auto events = rec.events();
  EXPECT_EQ(first_handling_violation(events), "");
  std::map<std::string, int> by;
  for (const auto& e : events) ++by[e.instance];
  EXPECT_GT(by["d"], 0);
  std::set<std::pair<std::string, std::uint64_t>> distinct;
  for (const auto& e : events) distinct.emplace(e.id, e.version);
  EXPECT_EQ(events.size(), distinct.size()) << "graceful handovers repeat nothing";
}

}  // namespace
}  // namespace jetsource::test
