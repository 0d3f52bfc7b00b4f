// Metrics recorded from many threads at once, while other threads scrape, create series and
// register and remove collectors: nothing is lost, scrapes see counts only go up (also run
// under ThreadSanitizer, label `concurrent`).
#include <jetsource/metrics.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace metrics = jetsource::metrics;

namespace {

std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

TEST(MetricsConcurrencyTest, NothingIsLostAndScrapesOnlySeeCountsGrow) {
  metrics::registry r;
  constexpr int threads = 4, per_thread = 20'000;
  std::atomic<bool> recording{true};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&r, t] {
      // looked up once, as callers do; the families are asked for concurrently too
      auto& c = r.counters("work_done_total", "Work.", {"kind"}).with({"shared"});
      auto& own = r.counters("work_done_total", "Work.", {"kind"}).with({std::to_string(t)});
      auto& h = r.histograms("work_duration_seconds", "Time.", {"kind"}).with({"shared"});
      auto& g = r.gauges("work_in_progress", "In progress.").with({});
      for (int i = 0; i < per_thread; ++i) {
        g.inc();
        c.inc();
        own.inc();
        h.observe(0.25);
        g.dec();
        if (i % 1000 == 0)  // new series while others record and scrape
          r.counters("work_batches_total", "Batches.", {"n"}).with({std::to_string(i)}).inc();
      }
    });
  std::thread collectors([&] {
    auto& f = r.gauges("work_queue_events", "Queue.", {"q"});
    while (recording) {
      auto handle = r.add_collector([&f](metrics::sink& out) { out.add(f, {"q1"}, 1); });
      std::this_thread::yield();
    }
  });
  std::thread scraper([&] {
    double last = 0;
    int scrapes = 0;
    while (recording || scrapes < 2) {
      auto text = metrics::render_prometheus(r);
      auto v = sample(text, "work_done_total{kind=\"shared\"}").value_or(0);
      EXPECT_GE(v, last) << "a counter went down between scrapes";
      last = v;
      auto count = sample(text, "work_duration_seconds_count{kind=\"shared\"}");
      auto inf = sample(text, "work_duration_seconds_bucket{kind=\"shared\",le=\"+Inf\"}");
      EXPECT_EQ(count, inf) << "_count differs from the +Inf bucket";
      ++scrapes;
    }
  });
  for (auto& th : pool) th.join();
  recording = false;
  collectors.join();
  scraper.join();

  auto text = metrics::render_prometheus(r);
  EXPECT_EQ(sample(text, "work_done_total{kind=\"shared\"}"), threads * per_thread) << text;
  for (int t = 0; t < threads; ++t)
    EXPECT_EQ(sample(text, "work_done_total{kind=\"" + std::to_string(t) + "\"}"), per_thread);
  EXPECT_EQ(sample(text, "work_duration_seconds_count{kind=\"shared\"}"), threads * per_thread);
  EXPECT_EQ(sample(text, "work_duration_seconds_bucket{kind=\"shared\",le=\"0.25\"}"),
            threads * per_thread);
  EXPECT_EQ(sample(text, "work_duration_seconds_sum{kind=\"shared\"}"),
            0.25 * threads * per_thread);
  EXPECT_EQ(sample(text, "work_in_progress"), 0);
  EXPECT_EQ(sample(text, "work_batches_total{n=\"0\"}"), threads);
  EXPECT_EQ(text.find("work_queue_events{"), std::string::npos);  // every handle went
}

}  // namespace
