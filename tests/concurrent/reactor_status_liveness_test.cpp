// The status reader's member count (read_reactor_status, `reactors status`) against member
// processes renewing their keys concurrently (tests/tools/reactor_member.cpp): live members are
// always counted, and a SIGKILLed one stops counting within a lease (ADR 0014, "Status
// liveness"); it counted for up to two leases before.
#include "reactor_fixture.hpp"

#include <iostream>

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

constexpr int lease_ms = 1500;

// `reactors status` counts members honestly: live ones are always counted, and a SIGKILLed one
// stops counting within about half a lease (it counted for up to two leases before).
TEST_F(reactor_test, StatusStopsCountingAKilledMemberWithinALease) {
  open_accounts("s-", 8);
  const auto out = dir_.path() / "handled.txt";
  const auto member_args = [&](const std::string& instance) -> std::vector<std::string> {
    return {"--nats-url", server_->url(), "--out",      out.string(),
            "--instance", instance,       "--lease-ms", std::to_string(lease_ms)};
  };
  member_processes members;
  const auto a = members.spawn(member_args("a"));
  const auto b = members.spawn(member_args("b"));
  const auto count = [&] {
    auto st = read_reactor_status(*conn_, "TEST", "audit");
    EXPECT_TRUE(st || st.error().is(errc::not_found)) << st.error();  // not_found: not yet
    return st ? st->members.size() : std::size_t{0};
  };
  ASSERT_TRUE(wait_until([&] { return count() == 2; }, milliseconds(20000)));
  for (int i = 0; i < 20; ++i) {  // over two leases: every renewal phase
    EXPECT_EQ(count(), 2u) << "a live member was left out (read " << i << ")";
    std::this_thread::sleep_for(milliseconds(lease_ms / 10));
  }
  members.kill9(a);
  const auto killed = clock_type::now();
  for (;;) {
    const auto asked = clock_type::now();
    auto st = read_reactor_status(*conn_, "TEST", "audit");
    ASSERT_TRUE(st) << st.error();
    if (st->members.size() == 1) {
      EXPECT_EQ(st->members[0].instance, "b");
      const auto after = std::chrono::duration_cast<milliseconds>(asked - killed);
      std::cout << "status stopped counting the killed member " << after.count()
                << " ms after SIGKILL (lease " << lease_ms << " ms)\n";
      EXPECT_LT(after.count(), lease_ms) << "the killed member counted for a lease or more";
      break;
    }
    ASSERT_LT(asked - killed, milliseconds(4 * lease_ms)) << "the killed member still counts";
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(members.terminate(b), 0);
}

}  // namespace
}  // namespace jetsource::test
