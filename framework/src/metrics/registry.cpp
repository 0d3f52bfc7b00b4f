// jetsource::metrics: the series (counter, gauge, histogram), families and the registry.
#include <jetsource/metrics.hpp>

#include "metrics/registry_entry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace jetsource::metrics {

namespace {

bool valid_name(std::string_view n, bool colon_allowed) {
  auto head = [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon_allowed && c == ':');
  };
  auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
  return !n.empty() && head(n.front()) && std::all_of(n.begin() + 1, n.end(), tail);
}

[[noreturn]] void refuse(std::string message) {
  throw std::invalid_argument("jetsource::metrics: " + std::move(message));
}

std::string_view type_name(kind k) {
  switch (k) {
    case kind::counter:
      return "counter";
    case kind::gauge:
      return "gauge";
    case kind::histogram:
      return "histogram";
  }
  return "untyped";
}

void check_labels(std::string_view family, kind k, const std::vector<std::string>& labels) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& l = labels[i];
    if (!valid_name(l, false) || l.starts_with("__"))
      refuse(fmt::format("{}: invalid label name '{}'", family, l));
    if (k == kind::histogram && l == "le")
      refuse(fmt::format("{}: a histogram cannot have a label 'le'", family));
    if (std::find(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(i), l) !=
        labels.begin() + static_cast<std::ptrdiff_t>(i))
      refuse(fmt::format("{}: label '{}' given twice", family, l));
  }
}

}  // namespace

// -- series ----------------------------------------------------------------------------------

histogram::histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_->size() + 1)) {}

void histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  const auto& b = *bounds_;
  // le: the first bucket whose upper bound is >= v (few buckets: a linear scan is fastest)
  std::size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.counts.reserve(bounds_->size() + 1);
  for (std::size_t i = 0; i <= bounds_->size(); ++i)
    s.counts.push_back(counts_[i].load(std::memory_order_relaxed));
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

const std::vector<double>& default_seconds_buckets() {
  static const std::vector<double> b{.0001, .00025, .0005, .001, .0025, .005, .01, .025,
                                     .05,   .1,     .25,   .5,   1,     2.5,  5,   10};
  return b;
}

// -- families --------------------------------------------------------------------------------

template <class Series>
family<Series>::family(std::string name, std::shared_ptr<const std::vector<double>> bounds,
                       std::vector<std::string> label_names)
    : name_(std::move(name)), bounds_(std::move(bounds)), label_names_(std::move(label_names)) {
  if (label_names_.empty()) find_or_add({});  // an unlabelled family shows its 0 at once
}

template <class Series>
Series& family<Series>::find_or_add(std::vector<std::string> values) {
  if (values.size() != label_names_.size())
    refuse(fmt::format("{}: {} label values given for the labels {}", name_, values.size(),
                       fmt::join(label_names_, ",")));
  std::lock_guard lock(mutex_);
  auto it = series_.find(values);
  if (it == series_.end()) {
    std::unique_ptr<Series> s;
    if constexpr (std::is_same_v<Series, histogram>)
      s = std::make_unique<histogram>(bounds_);
    else
      s = std::make_unique<Series>();
    it = series_.emplace(std::move(values), std::move(s)).first;
  }
  return *it->second;
}

template <class Series>
Series& family<Series>::with(std::initializer_list<std::string_view> label_values) {
  return find_or_add(std::vector<std::string>(label_values.begin(), label_values.end()));
}

template <class Series>
Series& family<Series>::with(std::span<const std::string> label_values) {
  return find_or_add(std::vector<std::string>(label_values.begin(), label_values.end()));
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// -- collectors ------------------------------------------------------------------------------

void sink::add_sample(std::string_view family, std::size_t label_count,
                      std::initializer_list<std::string_view> labels, double v) {
  if (labels.size() != label_count)
    refuse(fmt::format("{}: a collector gave {} label values for {} labels", family, labels.size(),
                       label_count));
  samples_.push_back({family, std::vector<std::string>(labels.begin(), labels.end()), v});
}
void sink::add(const family<counter>& f, std::initializer_list<std::string_view> labels, double v) {
  add_sample(f.name(), f.label_names().size(), labels, v);
}
void sink::add(const family<gauge>& f, std::initializer_list<std::string_view> labels, double v) {
  add_sample(f.name(), f.label_names().size(), labels, v);
}

collector_handle::collector_handle(collector_handle&& o) noexcept
    : registry_(std::exchange(o.registry_, nullptr)), id_(o.id_) {}
collector_handle& collector_handle::operator=(collector_handle&& o) noexcept {
  if (this != &o) {
    if (registry_) registry_->remove_collector(id_);
    registry_ = std::exchange(o.registry_, nullptr);
    id_ = o.id_;
  }
  return *this;
}
collector_handle::~collector_handle() {
  if (registry_) registry_->remove_collector(id_);
}

// -- the registry ----------------------------------------------------------------------------

registry::registry() = default;
registry::~registry() = default;

registry::entry& registry::declare(std::string_view name, std::string_view help, kind k,
                                   const std::vector<std::string>& label_names) {
  auto it = families_.find(name);  // names found were checked when they were added
  if (it != families_.end()) {
    const auto& e = *it->second;
    if (e.type != k || e.label_names != label_names)
      refuse(fmt::format("{} is already a {} with labels {{{}}}, not a {} with labels {{{}}}", name,
                         type_name(e.type), fmt::join(e.label_names, ","), type_name(k),
                         fmt::join(label_names, ",")));
    return *it->second;
  }
  if (!valid_name(name, true)) refuse(fmt::format("invalid metric name '{}'", name));
  check_labels(name, k, label_names);
  auto e = std::make_unique<entry>();
  e->name = std::string(name);
  e->help = std::string(help);
  e->type = k;
  e->label_names = label_names;
  return *families_.emplace(e->name, std::move(e)).first->second;
}

family<counter>& registry::counters(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  auto& e = declare(name, help, kind::counter, label_names);
  if (!e.counters) e.counters.reset(new family<counter>(e.name, nullptr, std::move(label_names)));
  return *e.counters;
}

family<gauge>& registry::gauges(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  auto& e = declare(name, help, kind::gauge, label_names);
  if (!e.gauges) e.gauges.reset(new family<gauge>(e.name, nullptr, std::move(label_names)));
  return *e.gauges;
}

family<histogram>& registry::histograms(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      refuse(fmt::format("{}: bucket bounds must be finite and ascending", name));
  std::lock_guard lock(mutex_);
  auto& e = declare(name, help, kind::histogram, label_names);
  if (!e.histograms) {
    auto b = std::make_shared<const std::vector<double>>(std::move(bounds));
    e.histograms.reset(new family<histogram>(e.name, std::move(b), std::move(label_names)));
  } else if (e.histograms->bounds_ && *e.histograms->bounds_ != bounds) {
    refuse(fmt::format("{} is already a histogram with other buckets", name));
  }
  return *e.histograms;
}

collector_handle registry::add_collector(collector collect) {
  std::lock_guard lock(collectors_mutex_);
  auto id = next_collector_++;
  collectors_.emplace(id, std::move(collect));
  return collector_handle(this, id);
}

void registry::remove_collector(std::uint64_t id) {
  std::lock_guard lock(collectors_mutex_);
  collectors_.erase(id);
}

registry& default_registry() {
  // Never destroyed: threads that record may outlive static destruction.
  static registry* r = new registry();
  return *r;
}

// -- HTTP ------------------------------------------------------------------------------------

void record_http_request(std::string_view route, std::string_view method, int status,
                         double seconds, registry& r) {
  auto& requests = r.counters("jetsource_http_requests_total",
                              "HTTP requests served, by route pattern, method and status code.",
                              {"route", "method", "status"});
  auto& durations = r.histograms("jetsource_http_request_duration_seconds",
                                 "Time to answer an HTTP request, by route pattern and method.",
                                 {"route", "method"});
  const auto code = fmt::format("{}", status);
  requests.with({route, method, code}).inc();
  durations.with({route, method}).observe(seconds);
}

}  // namespace jetsource::metrics
