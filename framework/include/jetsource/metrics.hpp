// Metrics: counters, gauges and histograms kept in memory, written in Prometheus' text exposition
// format (0.0.4) for a /metrics endpoint. The names jetsource records are in docs/operations.md.
//
// Thread-safety: a registry, its families and their series are safe to use from any thread.
// Recording is one or two relaxed atomic adds on a series the caller looks up once and keeps
// (a series lives as long as its registry); the lookup itself takes the family's mutex.
//
// clang-format off
//   auto& registry = jetsource::metrics::default_registry();
//   auto& orders = registry.counters("shop_orders_total", "Orders placed, by country.", {"country"});
//   jetsource::metrics::counter& de = orders.with({"de"});  // once
//   de.inc();                                                // on the hot path
//   std::string text = jetsource::metrics::render_prometheus(registry);  // for GET /metrics
// clang-format on
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetsource::metrics {

/// A count that only goes up (Prometheus counter): name it `..._total`.
class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down (Prometheus gauge).
class gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void inc(double d = 1) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  void dec(double d = 1) noexcept { value_.fetch_add(-d, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (Prometheus histogram), in base units (seconds).
class histogram {
 public:
  /// `bounds`: the buckets' upper bounds, ascending (+Inf is implied).
  explicit histogram(std::shared_ptr<const std::vector<double>> bounds);

  void observe(double v) noexcept;
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }

  /// A consistent-enough copy: per-bucket counts (not cumulative; the last is +Inf) and sum.
  struct snapshot {
    std::vector<std::uint64_t> counts;
    double sum = 0;
  };
  snapshot read() const;
  const std::vector<double>& bounds() const noexcept { return *bounds_; }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds + 1 (+Inf)
  std::atomic<double> sum_{0};
};

/// 100 µs to 10 s: .0001 .00025 .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
const std::vector<double>& default_seconds_buckets();

enum class kind { counter, gauge, histogram };

/// A metric name with its HELP text, TYPE and label names; its series by label values.
template <class Series>
class family {
 public:
  /// The series with these label values (as many as the family has label names), created at
  /// first use. Keep the reference: it stays valid as long as the registry.
  Series& with(std::initializer_list<std::string_view> label_values);
  Series& with(std::span<const std::string> label_values);

  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& label_names() const noexcept { return label_names_; }

  /// Calls f(label values, series) for each series, sorted by label values (for writers).
  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [values, series] : series_) f(values, std::as_const(*series));
  }

 private:
  friend class registry;
  family(std::string name, std::shared_ptr<const std::vector<double>> bounds,
         std::vector<std::string> label_names);
  Series& find_or_add(std::vector<std::string> values);

  std::string name_;
  std::shared_ptr<const std::vector<double>> bounds_;  // histograms only
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;  // sorted: stable output
};

/// What a collector reports at scrape time: values of counter or gauge families of its
/// registry (declared with counters()/gauges(), which may then have no series of their own).
class sink {
 public:
  void add(const family<counter>& f, std::initializer_list<std::string_view> labels, double v);
  void add(const family<gauge>& f, std::initializer_list<std::string_view> labels, double v);

  struct sample {
    std::string_view family;  ///< the family's name (the family outlives the scrape)
    std::vector<std::string> labels;
    double value = 0;
  };
  const std::vector<sample>& samples() const noexcept { return samples_; }

 private:
  void add_sample(std::string_view family, std::size_t label_count,
                  std::initializer_list<std::string_view> labels, double v);
  std::vector<sample> samples_;
};

class registry;
/// Keeps a collector registered; unregisters it (waiting for a scrape that runs it) when it
/// goes away.
class collector_handle {
 public:
  collector_handle() = default;
  collector_handle(collector_handle&&) noexcept;
  collector_handle& operator=(collector_handle&&) noexcept;
  collector_handle(const collector_handle&) = delete;
  collector_handle& operator=(const collector_handle&) = delete;
  ~collector_handle();

 private:
  friend class registry;
  collector_handle(registry* r, std::uint64_t id) : registry_(r), id_(id) {}
  registry* registry_ = nullptr;
  std::uint64_t id_ = 0;
};

/// The families of one process (default_registry()) or of one test. A name registered again
/// with the same type and label names gives the same family; anything else (another type,
/// other labels, an invalid name) is a programming error: std::invalid_argument.
class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  family<counter>& counters(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {});
  family<gauge>& gauges(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {});
  family<histogram>& histograms(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {},
                                std::vector<double> bounds = default_seconds_buckets());

  /// `collect` runs at every scrape (on the scraping thread, under a registry lock: keep it
  /// short, and do not add or remove collectors from it); what it adds to the sink is written
  /// with the families' own series.
  using collector = std::function<void(sink&)>;
  [[nodiscard]] collector_handle add_collector(collector collect);

  struct entry;  // not API: a family as kept (defined in the library's sources)

 private:
  friend class collector_handle;
  friend std::string render_prometheus(const registry&);
  entry& declare(std::string_view name, std::string_view help, kind k,
                 const std::vector<std::string>& label_names);
  void remove_collector(std::uint64_t id);

  mutable std::mutex mutex_;  // the families map (not their series)
  std::map<std::string, std::unique_ptr<entry>, std::less<>> families_;
  mutable std::mutex collectors_mutex_;  // held while collectors run
  std::map<std::uint64_t, collector> collectors_;
  std::uint64_t next_collector_ = 1;
};

/// The process's registry: what jetsource's repositories, connections and projectors record
/// into unless their options name another (or none).
registry& default_registry();

/// The registry in the text exposition format 0.0.4: families sorted by name, each with one
/// HELP and one TYPE line, series sorted by label values; collectors run first.
std::string render_prometheus(const registry& r);

/// The Content-Type of render_prometheus' output.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

/// For the HTTP server's per-request callback: counts the request in
/// jetsource_http_requests_total{route,method,status} and its time in
/// jetsource_http_request_duration_seconds{route,method}. `route` is the route's pattern
/// ("/aggregates/{type}/{id}"), never the raw path (one series per distinct value).
void record_http_request(std::string_view route, std::string_view method, int status,
                         double seconds, registry& r = default_registry());

}  // namespace jetsource::metrics
