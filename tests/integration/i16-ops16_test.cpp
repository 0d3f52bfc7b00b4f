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

TEST_F(OrderCliOpsTest, RebuildCountsCommitsAndReportsTheAdoptionWaitApart) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_sample();                                    // 1 commit, 3 events
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);  // 1 commit, 1 event
  query_until({"query", "order", "o-1", "--json"},
              [](const nlohmann::json& j) { return j["status"] == "placed"; });

  auto r = run({"projections", "rebuild", "order_summary"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.out, m,
      std::regex(R"(^rebuilt order_summary: 2 commits \(4 events\) in ([0-9.]+) s \(([0-9]+) )"
                 R"(commits/s\); now serving \S+ \(adopted by the running serve after ([0-9.]+) )"
                 R"(s more\)\n$)")))
      << r.out;
  // The rate is commits over the replay alone, not over the adoption wait too.
  const double replay = std::stod(m[1]), rate = std::stod(m[2]);
  if (replay >= 0.05) {
    EXPECT_NEAR(rate, 2 / replay, 2 / replay * 0.2 + 1) << r.out;
  }
  // The progress line (stderr, not a terminal) counts the same thing: commits.
  EXPECT_NE(r.err.find("rebuild order_summary: 2/2 commits (100.0%)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("2/2 events"), std::string::npos) << r.err;
  stop(serve);
}

TEST_F(OrderCliOpsTest, DemoReportIsATableWithHeadings) {
  auto r = run({"demo", "--orders", "30"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find('|'), std::string::npos) << r.out;  // no raw a|b|c| rows
  EXPECT_TRUE(std::regex_search(
      r.out,
      std::regex(
          R"(Top customers by lifetime value:\n  customer +orders created +orders )"
          R"(paid +lifetime value\n  -+  +-+  +-+  +-+\n  cust-\d+ +\d+ +\d+ +\d+\.\d\d\n)")))
      << r.out;
  EXPECT_TRUE(
      std::regex_search(r.out, std::regex(R"(Best-selling products by revenue:\n  product +)"
                                          R"(units sold +revenue\n)")))
      << r.out;
  EXPECT_TRUE(
      std::regex_search(r.out, std::regex(R"(Orders by status:\n  status +orders +total\n)")))
      << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex(R"(  rebuilt \d+ commits \(\d+ events\) in [0-9.]+ s \(\d+ commits/s\) )"
                        R"(\+ [0-9.]+ s until the live projector adopted it; now serving )")))
      << r.out;
}

}  // namespace
