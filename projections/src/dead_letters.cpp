// detail: dead letters of the apply path: writing them (noting each new one for the warning the
// applier logs after its commit), the parked aggregates, and retry / skip of one aggregate.
#include "applier.hpp"
#include "wire/headers.hpp"

#include <nlohmann/json.hpp>

#include <exception>

namespace jetsource::detail {

namespace {

std::string headers_json(const envelope& e) {
  nlohmann::json h = {{hdr_msg_id, e.msg_id},
                      {hdr_aggregate_type, e.aggregate_type},
                      {hdr_aggregate_id, e.aggregate_id},
                      {hdr_version, std::to_string(e.version)},
                      {hdr_events, e.event_types}};
  return h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

result<void> applier::load_parked(sqlite::database& db,
                                  const std::function<bool(std::string_view)>& mine) {
  JETSOURCE_TRY(rows, db.query("SELECT DISTINCT aggregate_type, aggregate_id FROM dead_letters"));
  for (const auto& r : rows) {
    auto type = r.get<std::string>(0), id = r.get<std::string>(1);
    if (mine(id)) parked_.insert(aggregate_key(type, id));
  }
  return success();
}

bool applier::parked(std::string_view aggregate_type, std::string_view aggregate_id) const {
  return parked_.contains(aggregate_key(aggregate_type, aggregate_id));
}

result<void> applier::dead_letter(pass& p, const envelope& e, std::string_view kind,
                                  std::string_view event_type, std::string_view error) {
  auto opt = [](std::string_view s) {
    return s.empty() ? std::optional<std::string>{} : std::optional<std::string>{std::string(s)};
  };
  JETSOURCE_TRY(p.tx.execute(
      "INSERT INTO dead_letters (sequence, aggregate_type, aggregate_id, first_version, "
      "last_version, kind, event_type, error, subject, headers, payload, attempts, "
      "first_failed_at, last_failed_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12) "
      "ON CONFLICT (sequence) DO NOTHING",
      e.sequence, e.aggregate_type, e.aggregate_id, e.first_version, e.version, kind,
      opt(event_type), opt(error), e.subject, headers_json(e),
      sqlite::blob{e.body.data(), e.body.size()}, p.now));
  if (p.tx.changes() == 0) return success();  // a redelivery of a dead letter: not new
  if (kind == "parked")
    p.new_dead.push_back(fmt::format("{} {} sequence {} is parked behind its dead letter",
                                     e.aggregate_type, e.aggregate_id, e.sequence));
  else
    p.new_dead.push_back(fmt::format(
        "{} {} sequence {} is a dead letter ({}); later messages of {} {} wait behind it until "
        "it is retried or skipped",
        e.aggregate_type, e.aggregate_id, e.sequence, error, e.aggregate_type, e.aggregate_id));
  return success();
}

result<std::size_t> applier::retry(sqlite::database& db, std::string_view aggregate_type,
                                   std::string_view aggregate_id, bool skip_first) {
  auto key = aggregate_key(aggregate_type, aggregate_id);
  JETSOURCE_TRY(tx, db.begin());
  versions_.reserve(1);  // one aggregate: the undo log's pointers stay valid
  pass p{tx, utc_now()};
  // Any failure rolls the transaction back: the versions it changed go back too.
  auto outcome = [&]() -> result<std::size_t> {
    JETSOURCE_TRY(rows, tx.query("SELECT sequence, subject, headers, payload FROM dead_letters "
                                 "WHERE aggregate_type = ?1 AND aggregate_id = ?2 "
                                 "ORDER BY sequence",
                                 aggregate_type, aggregate_id));
    std::size_t remaining = rows.size();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      owned_commit stored;
      stored.subject = r.get<std::string>(1);
      auto payload = r.get<std::vector<std::byte>>(3);
      stored.body.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
      try {
        auto h = nlohmann::json::parse(r.get<std::string>(2));
        stored.type = h.value(hdr_aggregate_type, "");
        stored.id = h.value(hdr_aggregate_id, "");
        stored.events = h.value(hdr_events, "");
        stored.msg_id = h.value(hdr_msg_id, "");
        stored.version = h.value(hdr_version, "");
      } catch (const std::exception& x) {
        return make_error(errc::decode_failed, "dead letter {}: bad headers: {}",
                          r.get<std::int64_t>(0), x.what());
      }
      envelope e = stored.view(r.get<std::uint64_t>(0));
      if (!e.malformed.empty() && !skip_first) break;

      JETSOURCE_TRY(slot, version_of(tx, key, e));
      const std::uint64_t v0 = *slot;
      bool skip = skip_first && i == 0;
      if (!skip && e.version > v0) {
        if (e.first_version != v0 + 1) break;  // still a gap: leave the rest parked
        JETSOURCE_TRY(guard, sqlite::savepoint::open(tx, message_savepoint));
        projection_context cx(tx, e.aggregate_type, e.aggregate_id, e.sequence);
        std::string failed_type;
        auto applied = run_handlers(cx, e, failed_type);
        if (!applied) {
          JETSOURCE_TRY(guard.rollback());
          if (not_the_message(applied.error())) return std::move(applied).error();
          JETSOURCE_TRY(tx.execute(
              "UPDATE dead_letters SET kind = 'poison', event_type = ?1, error = ?2, "
              "attempts = attempts + 1, last_failed_at = ?3 WHERE sequence = ?4",
              failed_type.empty() ? std::optional<std::string>{} : std::optional{failed_type},
              fmt::format("{}", applied.error()), p.now, e.sequence));
          break;
        }
        JETSOURCE_TRY(guard.release());
        p.events += e.version - e.first_version + 1;
      }
      if (e.malformed.empty() && e.version > v0) {
        JETSOURCE_TRY(record_version(tx, e, v0));
        p.undo.emplace_back(slot, v0);
        *slot = e.version;
      }
      JETSOURCE_TRY(tx.execute("DELETE FROM dead_letters WHERE sequence = ?1", e.sequence));
      --remaining;
    }
    JETSOURCE_TRY(
        tx.execute("UPDATE projection_state SET events_applied = events_applied + ?1, "
                   "updated_at = ?2 WHERE projection = ?3",
                   p.events, p.now, projection_.name()));
    JETSOURCE_TRY(tx.commit());
    p.undo.clear();
    if (remaining == 0) parked_.erase(key);
    return remaining;
  }();
  if (!outcome) undo(p);
  return outcome;
}

}  // namespace jetsource::detail
