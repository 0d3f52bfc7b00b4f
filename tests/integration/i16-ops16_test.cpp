// Issue 16 (operations), the read side of the command line: `projections status` carries every
// field of projection_status and the lag in seconds; rebuild and demo count commits in both their
// progress and their summary, with the live projector's adoption wait apart; the demo's report
// is a table with headings.
#include <nlohmann/json.hpp>

#include "order_cli_fixture.hpp"

#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::test::json_of;
using jetsource::test::keys_of;

class OrderCliOpsTest : public jetsource::test::order_cli_test {
 protected:
  nlohmann::json status_of(const std::string& name) {
    auto r = run({"projections", "status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    for (const auto& p : json_of(r.out))
      if (p["name"] == name) return p;
    ADD_FAILURE() << "no " << name << " in " << r.out;
    return {};
  }
};

TEST_F(OrderCliOpsTest, StatusJsonCarriesEveryFieldAndTheLagInSeconds) {
  create_sample();  // one commit, three events
  auto rebuilt = run({"projections", "rebuild", "order_summary"});
  ASSERT_EQ(rebuilt.code, 0) << rebuilt.err;

  // Caught up: nothing pending, so no lag, and the applied event's time is recorded.
  auto caught_up = status_of("order_summary");
  auto keys = keys_of(caught_up);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "applied_event_time", "consumer", "database", "database_version",
                      "dead_letters", "duplicates", "error", "events_applied", "events_per_s",
                      "held", "lag_seconds", "last_applied_seq", "max_applied_seq", "name",
                      "pending", "rebuild", "rebuild_applied_seq", "state", "version"}));
  EXPECT_EQ(caught_up["pending"], 0);
  EXPECT_EQ(caught_up["lag_seconds"], 0.0);
  EXPECT_EQ(caught_up["max_applied_seq"], 1);
  EXPECT_EQ(caught_up["last_applied_seq"], 1);
  EXPECT_EQ(caught_up["held"], 0);
  EXPECT_EQ(caught_up["duplicates"], 0);
  EXPECT_TRUE(std::regex_match(caught_up["applied_event_time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")))
      << caught_up.dump();

  // Behind by one commit, nothing running: the lag is the age of the last applied event.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);
  auto behind = status_of("order_summary");
  EXPECT_EQ(behind["pending"], 1);
  EXPECT_GE(behind["lag_seconds"].get<double>(), 0.4) << behind.dump();
  EXPECT_LT(behind["lag_seconds"].get<double>(), 120.0) << behind.dump();
  EXPECT_EQ(behind["applied_event_time"], caught_up["applied_event_time"]);

  // Never built: pending, but no applied event to measure from.
  auto never = status_of("customer_stats");
  EXPECT_EQ(never["state"], "not built");
  EXPECT_EQ(never["pending"], 2);
  EXPECT_EQ(never["applied_event_time"], "");
  EXPECT_EQ(never["lag_seconds"], 0.0);

  // The text table keeps its columns and adds the lag at the end.
  auto text = run({"projections", "status"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(std::regex_search(
      text.out, std::regex(R"(^projection +version +state +applied_seq +pending +events +dead +)"
                           R"(rebuild +lag_s +applied_event_time\n)")))
      << text.out;
  EXPECT_TRUE(std::regex_search(text.out, std::regex(R"(\norder_summary +1 +stopped +1 +1 +3 +0 +)"
                                                     R"(- +[0-9]+\.[0-9] +\d{4}-\d\d-\d\dT)")))
      << text.out;
}

}  // namespace
