// Metrics after real work: a real nats-server, repositories executing commands with every
// outcome, a projector applying (and dead-lettering) events, a server restart; the registry's
// text passes `promtool check metrics` and carries the expected series and values.
#include <jetsource/metrics.hpp>

#include "projector_fixture.hpp"
#include "promtool.hpp"

#include <charconv>
#include <sstream>
#include <thread>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

/// The value of one series (`name{labels}` exactly as written) in an exposition text.
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

/// Renders until `series` has `value` (what the server or the projector settles a little after
/// the call that caused it), or the deadline passes; returns the last text.
std::string render_until(const metrics::registry& r, const std::string& series, double value) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::string text = metrics::render_prometheus(r);
  while (sample(text, series) != value && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    text = metrics::render_prometheus(r);
  }
  return text;
}

std::string commands(std::string_view outcome) {
  return fmt::format("jetsource_commands_total{{aggregate=\"Account\",outcome=\"{}\"}}", outcome);
}

class metrics_test : public projector_test {
 protected:
  void SetUp() override {
    projector_test::SetUp();
    connection_options o;
    o.urls = {server_->url()};
    o.reconnect_wait = 50ms;
    o.metrics = &registry_;
    auto c = connection::connect(o);
    ASSERT_TRUE(c) << c.error();
    conn_m_.emplace(std::move(c).value());
    auto s = event_store::open(*conn_m_, {.stream = "TEST", .subject_prefix = "test"});
    ASSERT_TRUE(s) << s.error();
    store_m_.emplace(std::move(s).value());
  }
  void TearDown() override {
    store_m_.reset();
    conn_m_.reset();
    projector_test::TearDown();
  }

  metrics::registry registry_;
  std::optional<connection> conn_m_;
  std::optional<event_store> store_m_;
};

TEST_F(metrics_test, AfterRealWorkTheSeriesAreThereAndPromtoolAcceptsThem) {
  repository<bank::account> a{*store_m_, {.metrics = &registry_}};
  repository<bank::account> b{*store_m_, {.metrics = &registry_}};  // another writer
  ASSERT_TRUE(a.execute("acc-1", bank::open_account{"ada"}));
  ASSERT_TRUE(a.execute("acc-2", bank::open_account{"bob"}));
  auto refused = a.execute("acc-1", bank::withdraw{500});
  ASSERT_FALSE(refused);
  ASSERT_TRUE(refused.error().is(bank::account_error::insufficient_funds));
  ASSERT_TRUE(b.execute("acc-1", bank::deposit{100, "b"}));  // a's cached acc-1 is now stale
  auto retried = a.execute("acc-1", bank::deposit{50, "a"});
  ASSERT_TRUE(retried) << retried.error();
  ASSERT_EQ(retried->attempts, 2);
  ASSERT_TRUE(a.execute("acc-2", bank::deposit{10, "once"}, {.command_id = "cmd-fixed"}));
  auto again = a.execute("acc-2", bank::deposit{10, "once"}, {.command_id = "cmd-fixed"});
  ASSERT_TRUE(again) << again.error();
  ASSERT_EQ(again->status, append_status::already_appended);
  ASSERT_FALSE(a.execute("bad id", bank::deposit{1, ""}));
  ASSERT_TRUE(a.execute_async("acc-3", bank::open_account{"cy"},
                              [](result<executed> r) { EXPECT_TRUE(r) << r.error(); }));
  ASSERT_TRUE(a.flush());
  ASSERT_TRUE(a.execute("acc-2", bank::deposit{5, "poison"}));  // dead-lettered ...
  auto last = a.execute("acc-2", bank::deposit{5, "later"});    // ... and this parked behind it
  ASSERT_TRUE(last);

  auto o = options("balances.db", 1);
  o.metrics = &registry_;
  auto p = start(o);
  ASSERT_TRUE(p.wait_for(last->sequence, 10s));
  const std::string lag = "jetsource_projection_lag_events{projection=\"balances\"}";
  auto text = render_until(registry_, lag, 0);  // the ack reaches the server a little later

  EXPECT_EQ(sample(text, commands("appended")), 7) << text;
  EXPECT_EQ(sample(text, commands("conflict_retried")), 1) << text;
  EXPECT_EQ(sample(text, commands("already_appended")), 1) << text;
  EXPECT_EQ(sample(text, commands("rejected")), 1) << text;
  EXPECT_EQ(sample(text, commands("failed")), 1) << text;
  // every append sent: 9 sync ones (the conflicting one twice) and 1 async
  EXPECT_EQ(sample(text, "jetsource_append_duration_seconds_count{aggregate=\"Account\"}"), 10)
      << text;
  EXPECT_EQ(sample(text,
                   "jetsource_append_duration_seconds_bucket{aggregate=\"Account\","
                   "le=\"+Inf\"}"),
            10)
      << text;
  EXPECT_GT(sample(text, "jetsource_append_duration_seconds_sum{aggregate=\"Account\"}"), 0);
  auto st = p.status();
  ASSERT_TRUE(st) << st.error();
  EXPECT_EQ(sample(text, "jetsource_projection_events_applied_total{projection=\"balances\"}"),
            static_cast<double>(st->events_applied))
      << text;
  EXPECT_EQ(sample(text, lag), 0) << text;
  EXPECT_EQ(sample(text, "jetsource_projection_lag_seconds{projection=\"balances\"}"), 0) << text;
  EXPECT_EQ(sample(text, "jetsource_projection_dead_letters{projection=\"balances\"}"), 2) << text;
  EXPECT_EQ(sample(text, "jetsource_projection_parked_aggregates{projection=\"balances\"}"), 1)
      << text;
  EXPECT_EQ(sample(text, "jetsource_projection_failed{projection=\"balances\"}"), 0) << text;
  EXPECT_EQ(sample(text, "jetsource_nats_reconnects_total"), 0) << text;
  auto check = promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;

  // Stopped, it falls behind: the backlog in events and the age of what it applied last.
  ASSERT_TRUE(p.stop());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.execute("acc-1", bank::deposit{1, "behind"}));
  text = render_until(registry_, lag, 3);
  EXPECT_EQ(sample(text, lag), 3) << text;
  auto age = sample(text, "jetsource_projection_lag_seconds{projection=\"balances\"}");
  ASSERT_TRUE(age) << text;
  EXPECT_GT(*age, 0) << text;
  EXPECT_LT(*age, 60) << text;

  // The server goes away and comes back: one reconnect.
  crash_and_restart_server();
  text = render_until(registry_, "jetsource_nats_reconnects_total", 1);
  EXPECT_EQ(sample(text, "jetsource_nats_reconnects_total"), 1) << text;
  check = promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
}

// A projector that goes away takes its series with it (the collector is unregistered before its
// state is destroyed), and a repository or projector given no registry records nothing.
TEST_F(metrics_test, SeriesGoWithTheProjectorAndNoRegistryMeansNoSeries) {
  repository<bank::account> quiet{*store_m_, {.metrics = nullptr}};
  auto opened = quiet.execute("acc-9", bank::open_account{"zed"});
  ASSERT_TRUE(opened);
  {
    auto o = options("balances.db", 1);
    o.metrics = &registry_;
    auto p = start(o);
    ASSERT_TRUE(p.wait_for(opened->sequence, 10s));
    auto text = metrics::render_prometheus(registry_);
    EXPECT_TRUE(sample(text, "jetsource_projection_failed{projection=\"balances\"}")) << text;
  }
  auto text = metrics::render_prometheus(registry_);
  EXPECT_EQ(text.find("projection=\"balances\""), std::string::npos) << text;
  EXPECT_EQ(text.find("jetsource_commands_total{"), std::string::npos) << text;
}

}  // namespace
}  // namespace jetsource::test
