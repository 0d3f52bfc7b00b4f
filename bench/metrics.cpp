// jetsource-bench metrics: the cost of recording a metric on the hot path (a counter increment,
// a histogram observation, a gauge set, and a labelled lookup that callers are meant to do once)
// beside a raw std::atomic fetch_add, single thread, in ns per operation.
#include "bench.hpp"

#include <jetsource/metrics.hpp>

#include <atomic>
#include <cstdint>

namespace bench {

namespace {

template <class F>
double ns_per_op(std::int64_t n, F&& op) {
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) op(i);
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() /
         static_cast<double>(n);
}

}  // namespace

void run_metrics(const env& e) {
  const std::int64_t n = e.opt.events.value_or(20'000'000);
  jetsource::metrics::registry r;
  auto& commands = r.counters("bench_commands_total", "Commands.", {"aggregate", "outcome"});
  auto& c = commands.with({"Account", "appended"});
  auto& h =
      r.histograms("bench_append_duration_seconds", "Append.", {"aggregate"}).with({"Account"});
  auto& g = r.gauges("bench_lag_events", "Lag.", {"projection"}).with({"balances"});
  std::atomic<std::uint64_t> raw{0};
  std::vector<double> raw_ns, inc_ns, observe_ns, set_ns, lookup_ns;
  for (int run = 0; run < e.opt.runs; ++run) {
    check_stop();
    alternate(
        run,
        [&] {
          raw_ns.push_back(
              ns_per_op(n, [&](auto) { raw.fetch_add(1, std::memory_order_relaxed); }));
        },
        [&] { inc_ns.push_back(ns_per_op(n, [&](auto) { c.inc(); })); });
    // 40 µs .. 2.6 ms: a spread over the buckets an append lands in
    observe_ns.push_back(
        ns_per_op(n, [&](auto i) { h.observe(4e-5 * static_cast<double>(1 + (i & 63))); }));
    set_ns.push_back(ns_per_op(n, [&](auto i) { g.set(static_cast<double>(i)); }));
    lookup_ns.push_back(ns_per_op(n / 20, [&](auto) {
      commands.with({"Account", "appended"}).inc();
    }));
  }
  auto raw_s = summarize(raw_ns), inc_s = summarize(inc_ns);
  line("raw_metrics").stats("atomic_fetch_add_ns", raw_s).kv("ops", n).print();
  line("metrics")
      .stats("counter_inc_ns", inc_s)
      .stats("histogram_observe_ns", summarize(observe_ns))
      .stats("gauge_set_ns", summarize(set_ns))
      .stats("labelled_lookup_and_inc_ns", summarize(lookup_ns))
      .kv("counter_vs_raw", raw_s.median > 0 ? inc_s.median / raw_s.median : 0.0)
      .kv("ops", n)
      .print();
  if (c.value() + raw.load() == 0) throw failure("nothing counted");
}

}  // namespace bench
