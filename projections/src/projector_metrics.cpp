// The projector's metrics (jetsource/metrics.hpp), read when the registry is scraped rather than
// kept up to date on the apply path: events applied (in memory), the backlog and its age, the
// dead letters and the aggregates they park, and whether the projection failed.
//
// Cost per scrape and projector: one JetStream consumer-info request (the backlog; the server is
// the only one who knows what was appended since the last fetch, and a stalled fetcher is exactly
// when the number matters) and one small SQLite query under the database mutex (waits at most one
// group commit). Runs on the scraping thread.
#include "projector_metrics.hpp"

#include "consumer_admin.hpp"
#include "projector_state.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>

namespace jetsource::detail {

namespace {

struct projection_families {
  metrics::family<metrics::counter>* applied;
  metrics::family<metrics::gauge>*lag_events, *lag_seconds, *dead_letters, *parked, *failed;
};

projection_families declare(metrics::registry& r) {
  const std::vector<std::string> by{"projection"};
  return {
      &r.counters("jetsource_projection_events_applied_total",
                  "Events a projection has committed to its read model (handled or of types it "
                  "does not handle), over the database's life.",
                  by),
      &r.gauges("jetsource_projection_lag_events",
                "Messages the projection's consumer has not had applied yet (pending plus "
                "delivered but unacknowledged).",
                by),
      &r.gauges("jetsource_projection_lag_seconds",
                "Now minus the writer's timestamp of the newest applied commit while messages "
                "are pending; 0 when caught up.",
                by),
      &r.gauges("jetsource_projection_dead_letters",
                "Dead-lettered messages of the projection (poison and parked).", by),
      &r.gauges("jetsource_projection_parked_aggregates",
                "Aggregates whose events are held in dead letters (behind a poison message).", by),
      &r.gauges("jetsource_projection_failed",
                "1 when the projection stopped applying by itself (damaged file, stream created "
                "again: see its status), else 0.",
                by)};
}

struct stored_counts {
  std::uint64_t dead_letters = 0, parked = 0;
  double event_age_seconds = 0;
};

std::optional<stored_counts> read_counts(projector_state& s) {
  std::lock_guard lk(s.db_mutex);
  if (!s.db) return std::nullopt;
  auto row = s.db->query_one(
      "SELECT (SELECT count(*) FROM dead_letters), "
      "(SELECT count(*) FROM (SELECT DISTINCT aggregate_type, aggregate_id FROM dead_letters)), "
      "coalesce((julianday('now') - julianday(nullif(applied_event_time, ''))) * 86400.0, 0) "
      "FROM projection_state WHERE projection = ?1",
      s.proj.name());
  if (!row || !*row) return std::nullopt;
  return stored_counts{(*row)->get<std::uint64_t>(0), (*row)->get<std::uint64_t>(1),
                       std::max((*row)->get<double>(2), 0.0)};
}

void collect(projector_state& s, const projection_families& f, metrics::sink& out) {
  const std::string_view name = s.proj.name();
  out.add(*f.applied, {name}, static_cast<double>(s.events_applied.load()));
  out.add(*f.failed, {name}, s.failed.load() ? 1 : 0);
  // Without the backlog by the consumer leader's word (server unreachable, or an election) the
  // lag series are left out, not guessed.
  const std::optional<std::uint64_t> pending = s.consumer_backlog();
  if (pending) out.add(*f.lag_events, {name}, static_cast<double>(*pending));
  if (auto counts = read_counts(s)) {
    out.add(*f.dead_letters, {name}, static_cast<double>(counts->dead_letters));
    out.add(*f.parked, {name}, static_cast<double>(counts->parked));
    if (pending) out.add(*f.lag_seconds, {name}, *pending == 0 ? 0.0 : counts->event_age_seconds);
  }
}

}  // namespace

metrics::collector_handle watch_projector(projector_state& s, metrics::registry& r) {
  auto families = declare(r);
  return r.add_collector([&s, families](metrics::sink& out) { collect(s, families, out); });
}

}  // namespace jetsource::detail
