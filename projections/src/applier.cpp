// detail: the apply path shared by the projector's workers and the testing helper.
#include "applier.hpp"

#include <jetsource/detail/commit_events.hpp>

#include "log.hpp"

#include <fmt/chrono.h>

#include <chrono>
#include <exception>
#include <string>

namespace jetsource::detail {

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", std::chrono::floor<std::chrono::seconds>(now),
                     ms.count());
}

bool is_transient(const error& e) noexcept {
  // never errc::corrupt: that needs a rebuild. unreachable / timeout: a personal field's key
  // store could not be asked (crypto-shredding, ADR 0016): retried, never a dead letter.
  return e.code == errc::busy || e.code == errc::io || e.code == errc::unreachable ||
         e.code == errc::timeout;
}

bool not_the_message(const error& e) noexcept {
  return is_transient(e) || e.is(errc::corrupt);
}

void applier::release_held(const std::function<void(const envelope&)>& f) {
  for (const auto& [key, by_version] : held_)
    for (const auto& [v, e] : by_version) f(e);
  held_.clear();
  held_count_ = 0;
}

result<std::uint64_t*> applier::version_of(sqlite::transaction& tx, std::string_view key,
                                           const envelope& e) {
  if (auto* v = versions_.find(key)) return v;
  if (complete_) return versions_.insert(key, 0);
  JETSOURCE_TRY(row, tx.query_one("SELECT version FROM applied_versions "
                                  "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                                  e.aggregate_type, e.aggregate_id));
  std::uint64_t v = row ? row->get<std::uint64_t>(0) : 0;
  return versions_.insert(key, v);
}

void applier::undo(pass& p) {
  for (auto it = p.undo.rbegin(); it != p.undo.rend(); ++it) *it->first = it->second;
  p.undo.clear();
}

result<void> applier::run_handlers(projection_context& cx, const envelope& e,
                                   std::string& failed_type) {
  // Skip the body entirely when no event of the commit is handled. The handler found for the
  // header's first type serves the body's first event when their names agree (a lookup less).
  const projection::erased_handler* first = nullptr;
  bool any = false;
  for (std::string_view rest = e.event_types; !any;) {
    auto comma = rest.find(',');
    const auto* h = projection_.handler(rest.substr(0, comma));
    if (rest.data() == e.event_types.data()) first = h;
    any = h != nullptr;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (!any) return success();
  const std::string_view first_type = e.event_types.substr(0, e.event_types.find(','));
  std::string type;
  try {
    return for_each_commit_event(
        e.body, e.version - e.first_version + 1, type,
        [&](std::size_t i, std::string_view t, int schema, json_reader& ar) -> result<void> {
          const auto* h = i == 0 && t == first_type ? first : projection_.handler(t);
          if (h == nullptr) return success();
          cx.set_version(e.first_version + i);
          auto r = (*h)(cx, schema, ar);
          if (!r) {
            failed_type = t;
            error named = std::move(r).error();
            named.message = fmt::format("{}: {}", t, named.message);
            return named;
          }
          return success();
        });
  } catch (const std::exception& x) {
    failed_type = type;
    return make_error(errc::decode_failed, "{}: {}", type.empty() ? "commit body" : type, x.what());
  }
}

bool applier::taken(const pass& p, std::string_view key, std::uint64_t first) {
  for (const auto& t : p.taken)
    if (t.second == first && t.first == key) return true;
  return false;
}

result<void> applier::process(pass& p, envelope& e) {
  p.max_sequence = std::max(p.max_sequence, e.sequence);
  if (!e.malformed.empty()) {
    JETSOURCE_TRY(dead_letter(p, e, "poison", "", e.malformed));
    p.done.push_back(&e);
    return success();
  }
  aggregate_key(key_, e.aggregate_type, e.aggregate_id);
  const std::string_view key = key_;  // valid until a recursive process() (then unused)
  JETSOURCE_TRY(slot, version_of(p.tx, key, e));
  const std::uint64_t v0 = *slot;
  JETSOURCE_TRY(settled, settle_if_not_next(p, e, key, v0));
  if (settled) return success();
  JETSOURCE_TRY(applied, run_message(p, e, key, v0));
  if (!applied) return success();  // poison: dead-lettered, its aggregate parked
  p.undo.emplace_back(slot, v0);
  *slot = e.version;
  p.events += e.version - e.first_version + 1;
  p.done.push_back(&e);
  return process_waiting(p, key, e.version);
}

result<bool> applier::settle_if_not_next(pass& p, envelope& e, std::string_view key,
                                         std::uint64_t v0) {
  if (e.version <= v0) {  // a duplicate: applied before
    ++p.duplicates;
    p.done.push_back(&e);
    return true;
  }
  if ((!parked_.empty() && parked_.contains(key)) ||
      (!p.parked.empty() && p.parked.contains(key))) {
    JETSOURCE_TRY(dead_letter(p, e, "parked", "", ""));
    p.done.push_back(&e);
    return true;
  }
  if (e.first_version > v0 + 1) {  // a gap: an earlier commit is still on its way
    p.hold[std::string(key)][e.first_version] = &e;
    return true;
  }
  if (e.first_version <= v0) {
    JETSOURCE_TRY(dead_letter(p, e, "poison", "",
                              fmt::format("versions {}..{} overlap the applied version {}",
                                          e.first_version, e.version, v0)));
    p.parked.emplace(key);
    p.done.push_back(&e);
    return true;
  }
  return false;
}

result<void> record_version(sqlite::transaction& tx, const envelope& e, std::uint64_t v0) {
  if (v0 > 0) {
    JETSOURCE_TRY(
        tx.execute("UPDATE applied_versions SET version = ?3, sequence = ?4 "
                   "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                   e.aggregate_type, e.aggregate_id, e.version, e.sequence));
    if (tx.changes() == 1) return success();
  }
  return tx.execute(upsert_version, e.aggregate_type, e.aggregate_id, e.version, e.sequence);
}

namespace {

constexpr std::size_t versions_per_statement = 64;

std::string upsert_versions() {
  std::string sql =
      "INSERT INTO applied_versions (aggregate_type, aggregate_id, version, sequence) VALUES ";
  for (std::size_t i = 0; i < versions_per_statement; ++i)
    sql += fmt::format("{}(?{},?{},?{},?{})", i == 0 ? "" : ",", 4 * i + 1, 4 * i + 2, 4 * i + 3,
                       4 * i + 4);
  return sql +
         " ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version, "
         "sequence = excluded.sequence";
}

}  // namespace

result<void> write_versions(sqlite::transaction& tx,
                            const std::vector<std::pair<const envelope*, std::uint64_t>>& rows) {
  static const std::string many = upsert_versions();
  std::size_t i = 0;
  for (; rows.size() - i >= versions_per_statement; i += versions_per_statement) {
    JETSOURCE_TRY(st, tx.prepare(many));
    int k = 0;
    for (std::size_t j = i; j < i + versions_per_statement; ++j) {
      const envelope& e = *rows[j].first;
      // the envelopes outlive the statement's run
      JETSOURCE_TRY(st.bind_borrowed(++k, e.aggregate_type));
      JETSOURCE_TRY(st.bind_borrowed(++k, e.aggregate_id));
      JETSOURCE_TRY(st.bind(++k, e.version));
      JETSOURCE_TRY(st.bind(++k, e.sequence));
    }
    JETSOURCE_TRY(st.run());
  }
  for (; i < rows.size(); ++i) {
    JETSOURCE_TRY(record_version(tx, *rows[i].first, rows[i].second));
  }
  return success();
}

result<void> applier::run_and_record(pass& p, const envelope& e, std::string& failed_type,
                                     std::uint64_t v0) {
  projection_context cx(p.tx, e.aggregate_type, e.aggregate_id, e.sequence);
  auto applied = [&]() -> result<void> {
    try {
      return run_handlers(cx, e, failed_type);
    } catch (const std::exception& x) {
      return make_error(errc::internal, "handler threw: {}", x.what());
    } catch (...) {
      return make_error(errc::internal, "handler threw a non-standard exception");
    }
  }();
  if (applied) p.recorded.emplace_back(&e, v0);  // written before the commit
  return applied;
}

result<bool> applier::run_message(pass& p, envelope& e, std::string_view key, std::uint64_t v0) {
  std::optional<sqlite::savepoint> guard;
  if (p.guarded) {
    JETSOURCE_TRY(sp, sqlite::savepoint::open(p.tx, message_savepoint));
    guard.emplace(std::move(sp));
  }
  std::string failed_type;
  auto applied = run_and_record(p, e, failed_type, v0);
  if (!applied && !p.guarded) {
    if (!not_the_message(applied.error())) p.needs_guard = true;
    return std::move(applied).error();
  }
  if (!applied) {
    JETSOURCE_TRY(guard->rollback());
    if (not_the_message(applied.error())) return std::move(applied).error();
    JETSOURCE_TRY(dead_letter(p, e, "poison", failed_type, fmt::format("{}", applied.error())));
    p.parked.emplace(key);
    p.done.push_back(&e);
    JETSOURCE_TRY(park_waiting(p, key));
    return false;
  }
  if (guard) {
    JETSOURCE_TRY(guard->release());
  }
  return true;
}

result<void> applier::park_waiting(pass& p, std::string_view key) {
  // Whatever waits behind it is parked too, in order.
  if (auto it = held_.find(key); it != held_.end())
    for (auto& [first, h] : it->second) {
      if (taken(p, key, first)) continue;
      JETSOURCE_TRY(dead_letter(p, h, "parked", "", ""));
      p.taken.emplace_back(std::string(key), first);
      p.done.push_back(&h);
    }
  if (auto it = p.hold.find(key); it != p.hold.end()) {
    for (auto& [first, h] : it->second) {
      JETSOURCE_TRY(dead_letter(p, *h, "parked", "", ""));
      p.done.push_back(h);
    }
    p.hold.erase(it);
  }
  return success();
}

result<void> applier::process_waiting(pass& p, std::string_view key, std::uint64_t v) {
  // The next commit of this aggregate may be waiting: held from an earlier batch, or from this
  // one. Duplicates among the held ones are done too.
  if (p.hold.empty() && held_.empty()) return success();
  if (auto staged = p.hold.find(key); staged != p.hold.end()) {
    auto& m = staged->second;
    if (auto it = m.begin(); it != m.end() && it->first <= v + 1) {
      envelope* next = it->second;
      m.erase(it);
      if (m.empty()) p.hold.erase(staged);
      return process(p, *next);
    }
  }
  if (auto it = held_.find(key); it != held_.end()) {
    for (auto& [first, h] : it->second) {
      if (first > v + 1) break;
      if (taken(p, key, first)) continue;
      p.taken.emplace_back(std::string(key), first);
      return process(p, h);
    }
  }
  return success();
}

result<batch_outcome> applier::apply(sqlite::database& db, std::vector<envelope>& batch,
                                     std::uint64_t applied_sequence) {
  // The version cache is bounded between transactions (pass::undo points into it).
  if (versions_.size() >= max_cached_) {
    versions_.clear();
    complete_ = false;
  }
  versions_.reserve(batch.size());  // each message adds at most its own key
  for (bool guarded : {false, true}) {
    JETSOURCE_TRY(tx, db.begin());
    if (!probed_) {
      JETSOURCE_TRY(row, tx.query_one("SELECT EXISTS (SELECT 1 FROM applied_versions)"));
      complete_ = row && row->get<std::int64_t>(0) == 0 && versions_.empty();
      probed_ = true;
    }
    pass p{tx, utc_now(), guarded};
    result<void> r = success();
    for (auto& e : batch) {
      r = process(p, e);
      if (!r) break;
    }
    if (!r) undo(p);                    // the transaction rolls back: so do the versions
    if (!r && p.needs_guard) continue;  // a poison message: roll back, run it again guarded
    if (!r) return std::move(r).error();
    auto out = finish(p, tx, applied_sequence);
    if (!out) undo(p);
    return out;
  }
  return make_error(errc::internal, "unreachable");
}

result<batch_outcome> applier::finish(pass& p, sqlite::transaction& tx,
                                      std::uint64_t applied_sequence) {
  JETSOURCE_TRY(write_versions(tx, p.recorded));
  // The time of the newest message this commit settles (not of one it holds back for a gap).
  std::string_view event_time;
  std::uint64_t event_time_sequence = 0;
  for (const envelope* e : p.done)
    if (!e->timestamp.empty() && e->sequence >= event_time_sequence) {
      event_time_sequence = e->sequence;
      event_time = e->timestamp;
    }
  JETSOURCE_TRY(
      tx.execute("UPDATE projection_state SET max_sequence = max(max_sequence, ?1), "
                 "applied_sequence = max(applied_sequence, ?2), "
                 "events_applied = events_applied + ?3, updated_at = ?4, "
                 "applied_event_time = CASE WHEN ?6 <> '' AND ?7 >= max_sequence THEN ?6 "
                 "ELSE applied_event_time END "
                 "WHERE projection = ?5",
                 p.max_sequence, applied_sequence, p.events, p.now, projection_.name(), event_time,
                 event_time_sequence));
  JETSOURCE_TRY(tx.commit());
  for (const auto& what : p.new_dead) log()->warn("projection {}: {}", projection_.name(), what);

  // Committed: make the staged state real.
  batch_outcome out;
  out.events = p.events;
  out.duplicates = p.duplicates;
  // The batch's envelopes stay where they are (the worker's batch, until its next one); the
  // held ones this commit settled leave held_ for `released`.
  out.done.reserve(p.done.size());
  for (const envelope* e : p.done) out.done.push_back({e->sequence, e->reply});
  for (const auto& [key, first] : p.taken) {
    auto it = held_.find(key);
    auto node = it->second.extract(first);
    out.released.push_back(std::move(node.mapped()));
    --held_count_;
    if (it->second.empty()) held_.erase(it);
  }
  for (auto& [key, by_version] : p.hold)
    for (auto& [first, e] : by_version) {
      auto [slot, inserted] = held_[key].insert_or_assign(first, std::move(*e));
      held_count_ += inserted;
      out.dropped += !inserted;
    }
  p.undo.clear();  // committed
  for (auto& key : p.parked) parked_.insert(key);
  return out;
}

}  // namespace jetsource::detail
