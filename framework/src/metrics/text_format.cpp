// jetsource::metrics::render_prometheus: the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
#include <jetsource/metrics.hpp>

#include "metrics/registry_entry.hpp"

#include <fmt/format.h>

#include <cmath>
#include <deque>
#include <exception>
#include <map>
#include <string>
#include <vector>

namespace jetsource::metrics {

namespace {

using label_values = std::vector<std::string>;

void escape_into(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quotes && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

void number_into(std::string& out, double v) {
  if (std::isnan(v))
    out += "NaN";
  else if (std::isinf(v))
    out += v > 0 ? "+Inf" : "-Inf";
  else
    fmt::format_to(std::back_inserter(out), "{}", v);  // shortest text that reads back exactly
}

// name{a="x",b="y"[,le="0.5"]}
void series_into(std::string& out, std::string_view name, const std::vector<std::string>& names,
                 const label_values& values, std::string_view le = {}) {
  out += name;
  if (names.empty() && le.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    escape_into(out, values[i], true);
    out += '"';
  }
  if (!le.empty()) {
    if (!names.empty()) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void histogram_into(std::string& out, const registry::entry& e, const label_values& values,
                    const histogram& h) {
  const auto snap = h.read();
  const auto& bounds = h.bounds();
  const std::string bucket = e.name + "_bucket";
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += snap.counts[i];
    le.clear();
    number_into(le, i < bounds.size() ? bounds[i] : HUGE_VAL);
    series_into(out, bucket, e.label_names, values, le);
    fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
  }
  series_into(out, e.name + "_sum", e.label_names, values);
  out += ' ';
  number_into(out, snap.sum);
  out += '\n';
  // _count from the buckets read, so it always equals the +Inf bucket
  series_into(out, e.name + "_count", e.label_names, values);
  fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
}

// Counters and gauges: the family's own series and what collectors reported, merged by label
// values (a series of the family's own wins over a collected one with the same labels).
template <class Series>
void scalars_into(std::string& out, const registry::entry& e, const family<Series>* f,
                  const std::multimap<std::string_view, const sink::sample*>& collected) {
  std::map<label_values, std::string> lines;
  if (f != nullptr)
    f->for_each([&](const label_values& values, const Series& s) {
      std::string v;
      if constexpr (std::is_same_v<Series, counter>)
        v = fmt::format("{}", s.value());
      else
        number_into(v, s.value());
      lines.emplace(values, std::move(v));
    });
  auto [from, to] = collected.equal_range(e.name);
  for (auto it = from; it != to; ++it) {
    std::string v;
    number_into(v, it->second->value);
    lines.emplace(it->second->labels, std::move(v));
  }
  for (const auto& [values, value] : lines) {
    series_into(out, e.name, e.label_names, values);
    out += ' ';
    out += value;
    out += '\n';
  }
}

}  // namespace

std::string render_prometheus(const registry& r) {
  std::deque<sink> sinks;
  {
    std::lock_guard lock(r.collectors_mutex_);
    for (const auto& [id, collect] : r.collectors_) {
      sink one;
      try {
        collect(one);
      } catch (const std::exception&) {
        continue;  // a collector that fails shows nothing rather than half its series
      }
      sinks.push_back(std::move(one));
    }
  }
  std::multimap<std::string_view, const sink::sample*> by_family;
  for (const auto& one : sinks)
    for (const auto& s : one.samples()) by_family.emplace(s.family, &s);

  std::string out;
  std::lock_guard lock(r.mutex_);
  for (const auto& [name, e] : r.families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    escape_into(out, e->help, false);
    out += "\n# TYPE ";
    out += name;
    out += e->type == kind::counter ? " counter\n"
           : e->type == kind::gauge ? " gauge\n"
                                    : " histogram\n";
    switch (e->type) {
      case kind::counter:
        scalars_into(out, *e, e->counters.get(), by_family);
        break;
      case kind::gauge:
        scalars_into(out, *e, e->gauges.get(), by_family);
        break;
      case kind::histogram:
        e->histograms->for_each([&](const label_values& values, const histogram& h) {
          histogram_into(out, *e, values, h);
        });
        break;
    }
  }
  return out;
}

}  // namespace jetsource::metrics
