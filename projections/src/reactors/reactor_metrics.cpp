// A reactor member's metrics (jetsource/metrics.hpp), read from its atomics when the registry is
// scraped (nothing on the handling path but relaxed increments): events handled and retried,
// the parked aggregates its keeper sees in the group's bucket, its cursor's position and
// pending count, and the partitions it holds. Label: reactor=<name>.
#include "reactors/reactor_metrics.hpp"

#include "reactors/member_state.hpp"

namespace jetsource::detail {

namespace {

struct reactor_families {
  metrics::family<metrics::counter>*handled, *retries;
  metrics::family<metrics::gauge>*parked, *position, *pending, *partitions;
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
                    "Aggregates parked in the reactor's group (park records in its bucket), plus "
                    "this member's queue-mode dead records.",
                    by),
          &r.gauges("jetsource_reactor_position",
                    "The stream sequence this member's cursor delivered last.", by),
          &r.gauges("jetsource_reactor_pending",
                    "Messages of the stream this member's cursor has still to deliver.", by),
          &r.gauges("jetsource_reactor_partitions", "Partitions this member holds (ordered mode).",
                    by)};
}

void collect(reactor_member_state& s, const reactor_families& f, metrics::sink& out) {
  const std::string_view name = s.r.name();
  out.add(*f.handled, {name}, static_cast<double>(s.handled.load()));
  out.add(*f.retries, {name}, static_cast<double>(s.retries.load()));
  out.add(*f.parked, {name}, static_cast<double>(s.parked_count.load() + s.dead_count.load()));
  out.add(*f.position, {name}, static_cast<double>(s.position.load()));
  out.add(*f.pending, {name}, static_cast<double>(s.pending.load()));
  out.add(*f.partitions, {name}, static_cast<double>(s.owned ? s.owned->partitions().size() : 0));
}

}  // namespace

metrics::collector_handle watch_reactor(reactor_member_state& s, metrics::registry& r) {
  auto families = declare(r);
  return r.add_collector([&s, families](metrics::sink& out) { collect(s, families, out); });
}

}  // namespace jetsource::detail
