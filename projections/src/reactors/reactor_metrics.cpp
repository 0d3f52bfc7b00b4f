// A reactor member's metrics (jetsource/metrics.hpp, docs/operations.md), read from its atomics
// when the registry is scraped (nothing on the handling path but relaxed increments): events
// handled and retried, the parked aggregates its keeper sees in the group's bucket and the dead
// letters, its cursor's position, pending count and lag (in events and in seconds), and the
// partitions it holds. Label: reactor=<name>.
#include "reactors/reactor_metrics.hpp"

#include "reactors/member_state.hpp"

#include <algorithm>
#include <chrono>

namespace jetsource::detail {

namespace {

struct reactor_families {
  metrics::family<metrics::counter>*handled, *retries;
  metrics::family<metrics::gauge>*parked, *dead_letters, *position, *pending, *lag_events,
      *lag_seconds, *partitions;
};

reactor_families declare(metrics::registry& r) {
  const std::vector<std::string> by{"reactor"};
  return {&r.counters("jetsource_reactor_handled_total",
                      "Events whose handler a reactor member ran successfully (retries and "
                      "repeats after a takeover included).",
                      by),
          &r.counters("jetsource_reactor_retries_total",
                      "Failed handler calls a reactor member retried in process.", by),
          &r.gauges("jetsource_reactor_parked",
                    "Aggregates parked in the reactor's group (park records in its bucket): their "
                    "later events wait for a retry or skip.",
                    by),
          &r.gauges("jetsource_reactor_dead_letters",
                    "Dead letters of the reactor: its parked aggregates plus this member's "
                    "queue-mode dead records.",
                    by),
          &r.gauges("jetsource_reactor_position",
                    "The stream sequence this member's cursor delivered last.", by),
          &r.gauges("jetsource_reactor_pending",
                    "Messages of the stream this member's cursor has still to deliver.", by),
          &r.gauges("jetsource_reactor_lag_events",
                    "Messages this member has not handled yet: still to deliver plus delivered "
                    "and waiting for a handler.",
                    by),
          &r.gauges("jetsource_reactor_lag_seconds",
                    "Now minus the server's timestamp of the newest message this member's cursor "
                    "delivered, while it lags; 0 when caught up.",
                    by),
          &r.gauges("jetsource_reactor_partitions", "Partitions this member holds (ordered mode).",
                    by)};
}

void collect(reactor_member_state& s, const reactor_families& f, metrics::sink& out) {
  const std::string_view name = s.r.name();
  out.add(*f.handled, {name}, static_cast<double>(s.handled.load()));
  out.add(*f.retries, {name}, static_cast<double>(s.retries.load()));
  out.add(*f.parked, {name}, static_cast<double>(s.parked_count.load()));
  out.add(*f.dead_letters, {name},
          static_cast<double>(s.parked_count.load() + s.dead_count.load()));
  out.add(*f.position, {name}, static_cast<double>(s.position.load()));
  const auto pending = s.pending.load();
  out.add(*f.pending, {name}, static_cast<double>(pending));
  const auto lag = pending + s.buffered.load();
  out.add(*f.lag_events, {name}, static_cast<double>(lag));
  double age = 0;
  if (const auto at = s.position_time_ns.load(); lag > 0 && at > 0) {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    age = std::max(0.0, static_cast<double>(now - static_cast<std::int64_t>(at)) / 1e9);
  }
  out.add(*f.lag_seconds, {name}, age);
  out.add(*f.partitions, {name}, static_cast<double>(s.owned ? s.owned->partitions().size() : 0));
}

}  // namespace

metrics::collector_handle watch_reactor(reactor_member_state& s, metrics::registry& r) {
  auto families = declare(r);
  return r.add_collector([&s, families](metrics::sink& out) { collect(s, families, out); });
}

}  // namespace jetsource::detail
