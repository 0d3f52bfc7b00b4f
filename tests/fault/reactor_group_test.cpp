// Reactor groups across processes (issue 12, ADR 0014): members of one group are separate
// processes (tests/tools/reactor_member.cpp) appending what they handle to one file. While
// events are appended to interleaved aggregates, a member is SIGKILLed and another one added:
// every event is handled, each aggregate's versions are first handled in increasing order, and
// the killed member's partitions are taken over within the lease plus a margin. A member killed
// with -9 and restarted under its name resumes from the checkpoints without losing an event.
#include "reactor_fixture.hpp"

#include <atomic>

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

constexpr int lease_ms = 1500;

std::int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class reactor_group_test : public reactor_test {
 protected:
  // Appends deposits round-robin over `expected`'s accounts until stopped (a few hundred a
  // second), counting versions in `expected` (read after stop()).
  void start_appending(std::map<std::string, std::uint64_t>& expected) {
    appending_ = true;
    appender_ = std::thread([this, &expected] {
      while (appending_.load())
        for (auto& [id, v] : expected) {
          if (!appending_.load()) break;
          if (repo_->execute(id, bank::deposit{1, "g"})) ++v;
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
    });
  }
  void stop_appending() {
    appending_ = false;
    if (appender_.joinable()) appender_.join();
  }
  void TearDown() override {
    stop_appending();
    reactor_test::TearDown();
  }
  std::vector<std::string> member_args(const std::string& instance) {
    return {"--nats-url", server_->url(), "--out",      out_.string(),
            "--instance", instance,       "--lease-ms", std::to_string(lease_ms)};
  }
  // Waits for `n` more handled lines than `before`.
  bool wait_handled(std::size_t n, milliseconds timeout) {
    return wait_until([&] { return read_handled(out_).size() >= n; }, timeout);
  }

  std::filesystem::path out_ = dir_.path() / "handled.txt";
  std::atomic<bool> appending_{false};
  std::thread appender_;
};

TEST_F(reactor_group_test, KilledMemberIsTakenOverWithinTheLeaseAndNoEventIsLostOrReordered) {
  auto expected = open_accounts("g-", 48);
  member_processes members;
  const auto a = members.spawn(member_args("a"));
  const auto b = members.spawn(member_args("b"));
  const auto c = members.spawn(member_args("c"));
  start_appending(expected);
  ASSERT_TRUE(wait_handled(600, milliseconds(30000)));
  // Let the group settle (partitions spread over three members), then kill one.
  std::this_thread::sleep_for(milliseconds(2 * lease_ms));
  const auto killed_at = realtime_ns();
  members.kill9(b);
  std::this_thread::sleep_for(milliseconds(3 * lease_ms));
  const auto d = members.spawn(member_args("d"));  // added mid-way: takes its share
  std::this_thread::sleep_for(milliseconds(3 * lease_ms));
  stop_appending();
  ASSERT_TRUE(wait_until([&] { return covers(read_handled(out_), expected); }, milliseconds(30000)))
      << "an event was never handled";
  EXPECT_EQ(members.terminate(a), 0);
  EXPECT_EQ(members.terminate(c), 0);
  EXPECT_EQ(members.terminate(d), 0);

  const auto events = read_handled(out_);
  EXPECT_EQ(first_handling_violation(events), "");
  std::map<std::string, std::size_t> by;
  std::set<std::uint32_t> b_partitions;  // what b handled in its last lease before the kill
  for (const auto& e : events) {
    ++by[e.instance];
    if (e.instance == "b" && e.at_ns > killed_at - lease_ms * 1'000'000ll)
      b_partitions.insert(fnv1a32(e.id) % 64);
  }
  EXPECT_GT(by["a"], 0u);
  EXPECT_GT(by["b"], 0u);
  EXPECT_GT(by["c"], 0u);
  EXPECT_GT(by["d"], 0u) << "the member added mid-way took a share";
  ASSERT_FALSE(b_partitions.empty());
  // Takeover: for each partition b held, the first event another member handled after the kill.
  std::int64_t worst = 0;
  for (auto p : b_partitions) {
    std::int64_t first = 0;
    for (const auto& e : events)
      if (e.instance != "b" && e.at_ns > killed_at && fnv1a32(e.id) % 64 == p) {
        first = e.at_ns;
        break;
      }
    ASSERT_GT(first, 0) << "partition " << p << " was never taken over";
    worst = std::max(worst, first - killed_at);
  }
  std::cout << "takeover after SIGKILL: " << worst / 1'000'000 << " ms over " << b_partitions.size()
            << " partitions (lease " << lease_ms << " ms)\n";
  EXPECT_LT(worst, (lease_ms + 1500) * 1'000'000ll) << "takeover slower than lease + 1.5 s";
}

TEST_F(reactor_group_test, KillNineThenRestartResumesFromTheCheckpointWithoutLosingAnEvent) {
  auto expected = open_accounts("k-", 24);
  member_processes members;
  auto solo = members.spawn(member_args("solo"));
  start_appending(expected);
  ASSERT_TRUE(wait_handled(300, milliseconds(30000)));
  for (int k = 0; k < 3; ++k) {
    std::this_thread::sleep_for(milliseconds(700));
    members.kill9(solo);
    solo = members.spawn(member_args("solo"));  // the same name: waits for the old key to expire
  }
  std::this_thread::sleep_for(milliseconds(1000));
  stop_appending();
  ASSERT_TRUE(wait_until([&] { return covers(read_handled(out_), expected); }, milliseconds(40000)))
      << "an event was lost across kill -9";
  EXPECT_EQ(members.terminate(solo), 0);
  const auto events = read_handled(out_);
  EXPECT_EQ(first_handling_violation(events), "");
  std::set<std::pair<std::string, std::uint64_t>> distinct;
  for (const auto& e : events) distinct.emplace(e.id, e.version);
  std::cout << events.size() - distinct.size() << " events handled again after 3 kills (of "
            << distinct.size() << ")\n";
}

}  // namespace
}  // namespace jetsource::test
