// The metrics registry and its text writer: escaping, cumulative histogram buckets, order, one
// HELP/TYPE per family, collectors; the output checked by promtool (Debian's prometheus).
#include <jetsource/metrics.hpp>

#include "promtool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>

namespace metrics = jetsource::metrics;

namespace {

TEST(MetricsTest, WritesFamiliesInNameOrderWithSeriesInLabelOrder) {
  metrics::registry r;
  auto& b = r.counters("b_things_total", "Things.", {"kind"});
  b.with({"z"}).inc(3);
  b.with({"a"}).inc();
  r.gauges("a_level", "A level.").with({}).set(2.5);
  EXPECT_EQ(metrics::render_prometheus(r),
            "# HELP a_level A level.\n"
            "# TYPE a_level gauge\n"
            "a_level 2.5\n"
            "# HELP b_things_total Things.\n"
            "# TYPE b_things_total counter\n"
            "b_things_total{kind=\"a\"} 1\n"
            "b_things_total{kind=\"z\"} 3\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  metrics::registry r;
  r.counters("x_total", "Back\\slash and\nnewline \"quoted\".", {"v"}).with({"a\\b\"c\nd"}).inc();
  EXPECT_EQ(metrics::render_prometheus(r),
            "# HELP x_total Back\\\\slash and\\nnewline \"quoted\".\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  metrics::registry r;
  auto& h = r.histograms("op_duration_seconds", "Op time.", {"op"}, {0.25, 0.5, 1});
  auto& s = h.with({"save"});
  s.observe(0.25);  // on a bound: counts in that bucket (le = less or equal)
  s.observe(0.375);
  s.observe(0.375);
  s.observe(std::chrono::milliseconds(500));
  s.observe(30.0);  // above every bound: +Inf only
  EXPECT_EQ(metrics::render_prometheus(r),
            "# HELP op_duration_seconds Op time.\n"
            "# TYPE op_duration_seconds histogram\n"
            "op_duration_seconds_bucket{op=\"save\",le=\"0.25\"} 1\n"
            "op_duration_seconds_bucket{op=\"save\",le=\"0.5\"} 4\n"
            "op_duration_seconds_bucket{op=\"save\",le=\"1\"} 4\n"
            "op_duration_seconds_bucket{op=\"save\",le=\"+Inf\"} 5\n"
            "op_duration_seconds_sum{op=\"save\"} 31.5\n"
            "op_duration_seconds_count{op=\"save\"} 5\n");
}

TEST(MetricsTest, DefaultBucketsGoFrom100MicrosecondsTo10Seconds) {
  const auto& b = metrics::default_seconds_buckets();
  ASSERT_EQ(b.size(), 16u);
  EXPECT_DOUBLE_EQ(b.front(), 0.0001);
  EXPECT_DOUBLE_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(MetricsTest, AFamilyAskedForAgainIsTheSameAndItsSeriesStay) {
  metrics::registry r;
  auto& a = r.counters("c_total", "C.", {"l"});
  auto& one = a.with({"x"});
  one.inc();
  auto& again = r.counters("c_total", "C.", {"l"});
  EXPECT_EQ(&a, &again);
  EXPECT_EQ(&again.with({"x"}), &one);
  EXPECT_EQ(one.value(), 1u);
}

TEST(MetricsTest, RefusesWhatWouldWriteInvalidOutput) {
  metrics::registry r;
  r.counters("c_total", "C.", {"l"});
  EXPECT_THROW(r.gauges("c_total", "C."), std::invalid_argument);           // another type
  EXPECT_THROW(r.counters("c_total", "C.", {"m"}), std::invalid_argument);  // other labels
  EXPECT_THROW(r.counters("1bad", "B."), std::invalid_argument);
  EXPECT_THROW(r.counters("bad-name", "B."), std::invalid_argument);
  EXPECT_THROW(r.counters("ok_total", "B.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.counters("ok_total", "B.", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.histograms("h_seconds", "H.", {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histograms("h_seconds", "H.", {}, {1, 0.5}), std::invalid_argument);
  EXPECT_THROW(r.counters("c_total", "C.", {"l"}).with({"x", "y"}), std::invalid_argument);
  EXPECT_EQ(metrics::render_prometheus(r).find("bad"), std::string::npos);
}

TEST(MetricsTest, CollectorsReportAtScrapeTimeUntilTheirHandleGoes) {
  metrics::registry r;
  auto& lag = r.gauges("q_lag_events", "Lag.", {"q"});
  lag.with({"own"}).set(1);
  double value = 7;
  {
    auto handle = r.add_collector([&](metrics::sink& out) { out.add(lag, {"collected"}, value); });
    value = 9;  // read when scraped, not when registered
    EXPECT_EQ(metrics::render_prometheus(r),
              "# HELP q_lag_events Lag.\n"
              "# TYPE q_lag_events gauge\n"
              "q_lag_events{q=\"collected\"} 9\n"
              "q_lag_events{q=\"own\"} 1\n");
  }
  EXPECT_EQ(metrics::render_prometheus(r).find("collected"), std::string::npos);
}

TEST(MetricsTest, AFailingCollectorLeavesTheRestOfTheScrape) {
  metrics::registry r;
  auto& g = r.gauges("g_level", "G.", {"k"});
  auto bad = r.add_collector([&](metrics::sink& out) {
    out.add(g, {"half"}, 1);
    throw std::runtime_error("no");
  });
  auto good = r.add_collector([&](metrics::sink& out) { out.add(g, {"fine"}, 2); });
  auto text = metrics::render_prometheus(r);
  EXPECT_NE(text.find("g_level{k=\"fine\"} 2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("half"), std::string::npos) << text;
}

TEST(MetricsTest, WritesSpecialFloatValues) {
  metrics::registry r;
  auto& g = r.gauges("v_level", "V.", {"k"});
  g.with({"inf"}).set(std::numeric_limits<double>::infinity());
  g.with({"nan"}).set(std::numeric_limits<double>::quiet_NaN());
  g.with({"neg"}).set(-std::numeric_limits<double>::infinity());
  g.with({"small"}).set(1e-7);
  auto text = metrics::render_prometheus(r);
  EXPECT_NE(text.find("v_level{k=\"inf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("v_level{k=\"nan\"} NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("v_level{k=\"neg\"} -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("v_level{k=\"small\"} 1e-07\n"), std::string::npos) << text;
  auto check = jetsource::test::promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
}

TEST(MetricsTest, HttpRequestsAreCountedByRouteMethodAndStatus) {
  metrics::registry r;
  metrics::record_http_request("/aggregates/{type}/{id}", "GET", 200, 0.002, r);
  metrics::record_http_request("/aggregates/{type}/{id}", "GET", 200, 0.004, r);
  metrics::record_http_request("/commands/{type}", "POST", 409, 0.03, r);
  auto text = metrics::render_prometheus(r);
  EXPECT_NE(text.find("jetsource_http_requests_total{route=\"/aggregates/{type}/{id}\","
                      "method=\"GET\",status=\"200\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("jetsource_http_requests_total{route=\"/commands/{type}\",method=\"POST\","
                      "status=\"409\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("jetsource_http_request_duration_seconds_count{route=\"/aggregates/"
                      "{type}/{id}\",method=\"GET\"} 2\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, PromtoolAcceptsEveryKindOfFamily) {
  metrics::registry r;
  r.counters("jetsource_test_things_total", "Things done.", {"aggregate", "outcome"})
      .with({"Order", "appended"})
      .inc(12);
  r.gauges("jetsource_test_backlog_events", "Backlog.", {"projection"})
      .with({"order_summary"})
      .set(3);
  r.histograms("jetsource_test_duration_seconds", "Time.", {"aggregate"})
      .with({"Order"})
      .observe(0.0042);
  r.counters("jetsource_test_unlabelled_total", "No labels.");  // a 0 from the start
  metrics::record_http_request("/metrics", "GET", 200, 0.001, r);
  auto text = metrics::render_prometheus(r);
  EXPECT_NE(text.find("jetsource_test_unlabelled_total 0\n"), std::string::npos) << text;
  auto check = jetsource::test::promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
}

}  // namespace

namespace {

// The ```yaml block after the <!-- jetsource-alert-rules --> marker of docs/operations.md.
std::string documented_alert_rules() {
  std::ifstream in(std::string(JETSOURCE_SOURCE_DIR) + "/docs/operations.md");
  std::string line, yaml;
  bool marker = false, inside = false;
  while (std::getline(in, line)) {
    if (line == "<!-- jetsource-alert-rules -->")
      marker = true;
    else if (marker && !inside && line == "```yaml")
      inside = true;
    else if (inside && line == "```")
      break;
    else if (inside)
      yaml += line + "\n";
  }
  return yaml;
}

TEST(MetricsTest, TheDocumentedAlertRulesAreValidAndFireAtTheirThresholds) {
  const auto rules = documented_alert_rules();
  ASSERT_NE(rules.find("JetsourceProjectionBacklog"), std::string::npos) << rules;
  jetsource::test::temp_dir dir;
  const auto rules_file = dir.path() / "rules.yml";
  std::ofstream(rules_file) << rules;
  auto check = jetsource::test::promtool({"check", "rules", rules_file.string()}, "");
  EXPECT_EQ(check.status, 0) << check.output << "\n" << rules;

  // Backlog over 10K events and lag over 100 ms fire; below them nothing does.
  const auto test_file = dir.path() / "rules_test.yml";
  std::ofstream(test_file) << R"yaml(rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'jetsource_projection_lag_events{projection="order_summary"}'
        values: '20000x10'
      - series: 'jetsource_projection_lag_events{projection="balances"}'
        values: '9999x10'
      - series: 'jetsource_projection_lag_seconds{projection="order_summary"}'
        values: '0.5x10'
      - series: 'jetsource_projection_lag_seconds{projection="balances"}'
        values: '0.05x10'
      - series: 'jetsource_reactor_lag_events{reactor="inventory",instance="a"}'
        values: '12000x10'
      - series: 'jetsource_reactor_lag_events{reactor="notifications",instance="a"}'
        values: '10x10'
      - series: 'jetsource_reactor_dead_letters{reactor="notifications",instance="a"}'
        values: '2x10'
      - series: 'jetsource_reactor_dead_letters{reactor="notifications",instance="b"}'
        values: '2x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: JetsourceProjectionBacklog
        exp_alerts:
          - exp_labels: {severity: warning, projection: order_summary}
            exp_annotations:
              summary: "Projection order_summary is 20000 events behind"
      - eval_time: 5m
        alertname: JetsourceProjectionLag
        exp_alerts:
          - exp_labels: {severity: warning, projection: order_summary}
            exp_annotations:
              summary: "Projection order_summary shows data 0.5 s old"
      - eval_time: 5m
        alertname: JetsourceReactorBacklog
        exp_alerts:
          - exp_labels: {severity: warning, reactor: inventory}
            exp_annotations:
              summary: "Reactor inventory is 12000 events behind"
      - eval_time: 5m
        alertname: JetsourceReactorDeadLetters
        exp_alerts:
          - exp_labels: {severity: warning, reactor: notifications}
            exp_annotations:
              summary: "Reactor notifications has parked aggregates (2)"
              description: "See reactors dead-letters; fix the cause, then reactors retry."
)yaml";
  auto fired = jetsource::test::promtool({"test", "rules", test_file.string()}, "");
  EXPECT_EQ(fired.status, 0) << fired.output;
}

}  // namespace
