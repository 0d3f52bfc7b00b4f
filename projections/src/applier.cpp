// detail: the apply path shared by the projector's workers and the testing helper.
#include "applier.hpp"
#include "wire/headers.hpp"

#include <fmt/chrono.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <exception>

namespace jetsource::detail {

namespace {

constexpr std::string_view upsert_version =
    "INSERT INTO applied_versions (aggregate_type, aggregate_id, version, sequence) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (aggregate_type, aggregate_id) "
    "DO UPDATE SET version = excluded.version, sequence = excluded.sequence";

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// The n-th token from the end of a subject (0: the last), or "".
std::string_view token_from_end(std::string_view subject, int n) {
  for (;;) {
    auto dot = subject.rfind('.');
    std::string_view last = dot == std::string_view::npos ? subject : subject.substr(dot + 1);
    if (n == 0) return last;
    if (dot == std::string_view::npos) return {};
    subject = subject.substr(0, dot);
    --n;
  }
}

std::string headers_json(const envelope& e) {
  nlohmann::json h = {{hdr_msg_id, e.msg_id},
                      {hdr_aggregate_type, e.aggregate_type},
                      {hdr_aggregate_id, e.aggregate_id},
                      {hdr_version, std::to_string(e.version)},
                      {hdr_events, e.event_types}};
  return h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void aggregate_key(std::string& out, std::string_view type, std::string_view id) {
  out.assign(type).push_back('\x1f');
  out.append(id);
}

std::string aggregate_key(std::string_view type, std::string_view id) {
  std::string k;
  k.reserve(type.size() + id.size() + 1);
  aggregate_key(k, type, id);
  return k;
}

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", std::chrono::floor<std::chrono::seconds>(now),
                     ms.count());
}

bool is_transient(const error& e) noexcept {
  return e.code == errc::busy || e.code == errc::io;
}

envelope owned_commit::view(std::uint64_t sequence) const {
  envelope e;
  e.sequence = sequence;
  e.subject = subject;
  e.event_types = events;
  e.msg_id = msg_id;
  e.body = body;
  describe(e, type, id, version);
  return e;
}

void describe(envelope& e, std::string_view type_header, std::string_view id_header,
              std::string_view version_header) {
  e.aggregate_type = type_header.empty() ? token_from_end(e.subject, 2) : type_header;
  e.aggregate_id = id_header.empty() ? token_from_end(e.subject, 0) : id_header;
  if (type_header.empty() || id_header.empty()) {
    e.malformed = "not a jetsource commit: Es-Aggregate-Type or Es-Aggregate-Id missing";
    return;
  }
  auto version = to_u64(version_header);
  if (!version || *version == 0) {
    e.malformed = fmt::format("bad Es-Version header '{}'", version_header);
    return;
  }
  if (e.event_types.empty()) {
    e.malformed = "Es-Events header missing";
    return;
  }
  const std::uint64_t count = event_count(e.event_types);
  if (count > *version) {
    e.malformed = fmt::format("Es-Version {} is lower than its {} events", *version, count);
    return;
  }
  e.version = *version;
  e.first_version = *version - count + 1;
}

struct applier::pass {
  sqlite::transaction& tx;
  std::string now;
  // Each message in its own SAVEPOINT, so a poison one is rolled back alone. The first pass
  // over a batch runs without (two statements less per message); a poison message makes it
  // roll back and run the batch again guarded.
  bool guarded = true;
  bool needs_guard = false;
  // Versions written in this transaction (in versions_): the slot and its value before.
  std::vector<std::pair<std::uint64_t*, std::uint64_t>> undo;
  key_set parked;  // parked in this transaction
  std::vector<envelope*> done;
  // staged holds: key -> first_version -> message (from the batch)
  key_map<std::map<std::uint64_t, envelope*>> hold;
  std::vector<std::pair<std::string, std::uint64_t>> taken;  // held_ entries now done
  std::uint64_t events = 0, duplicates = 0, max_sequence = 0;
};

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

void applier::release_held(const std::function<void(const envelope&)>& f) {
  for (const auto& [key, by_version] : held_)
    for (const auto& [v, e] : by_version) f(e);
  held_.clear();
  held_count_ = 0;
}

result<std::uint64_t*> applier::version_of(sqlite::transaction& tx, std::string_view key,
                                           const envelope& e) {
  if (auto it = versions_.find(key); it != versions_.end()) return &it->second;
  JETSOURCE_TRY(row, tx.query_one("SELECT version FROM applied_versions "
                                  "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                                  e.aggregate_type, e.aggregate_id));
  std::uint64_t v = row ? row->get<std::uint64_t>(0) : 0;
  return &versions_.emplace(std::string(key), v).first->second;
}

void applier::undo(pass& p) {
  for (auto it = p.undo.rbegin(); it != p.undo.rend(); ++it) *it->first = it->second;
  p.undo.clear();
}

result<void> applier::run_handlers(projection_context& cx, const envelope& e) {
  // Skip the body entirely when no event of the commit is handled.
  bool any = false;
  for (std::string_view rest = e.event_types; !any;) {
    auto comma = rest.find(',');
    any = projection_.handler(rest.substr(0, comma)) != nullptr;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (!any) return success();
  std::string type;
  try {
    json_reader ar(e.body);
    ar.setNextName("events");
    ar.startNode();
    cereal::size_type n = 0;
    ar.loadSize(n);
    if (n != e.version - e.first_version + 1)
      return make_error(errc::decode_failed, "the body has {} events, Es-Events names {}", n,
                        e.version - e.first_version + 1);
    for (cereal::size_type i = 0; i < n; ++i) {
      ar.startNode();
      int schema = 0;
      ar(cereal::make_nvp("type", type), cereal::make_nvp("v", schema));
      if (const auto* h = projection_.handler(type)) {
        cx.set_version(e.first_version + i);
        auto r = (*h)(cx, schema, ar);
        if (!r) return make_error(r.error().code, "{}: {}", type, r.error().message);
      }
      ar.finishNode();
    }
    return success();
  } catch (const std::exception& x) {
    return make_error(errc::decode_failed, "{}: {}", type.empty() ? "commit body" : type, x.what());
  }
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
  return success();
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
  if (e.version <= v0) {  // a duplicate: applied before
    ++p.duplicates;
    p.done.push_back(&e);
    return success();
  }
  if ((!parked_.empty() && parked_.contains(key)) ||
      (!p.parked.empty() && p.parked.contains(key))) {
    JETSOURCE_TRY(dead_letter(p, e, "parked", "", ""));
    p.done.push_back(&e);
    return success();
  }
  if (e.first_version > v0 + 1) {  // a gap: an earlier commit is still on its way
    p.hold[std::string(key)][e.first_version] = &e;
    return success();
  }
  if (e.first_version <= v0) {
    JETSOURCE_TRY(dead_letter(p, e, "poison", "",
                              fmt::format("versions {}..{} overlap the applied version {}",
                                          e.first_version, e.version, v0)));
    p.parked.emplace(key);
    p.done.push_back(&e);
    return success();
  }

  if (p.guarded) {
    JETSOURCE_TRY(p.tx.execute("SAVEPOINT jetsource_message"));
  }
  projection_context cx(p.tx, e.aggregate_type, e.aggregate_id, e.sequence);
  auto applied = [&]() -> result<void> {
    try {
      return run_handlers(cx, e);
    } catch (const std::exception& x) {
      return make_error(errc::internal, "handler threw: {}", x.what());
    } catch (...) {
      return make_error(errc::internal, "handler threw a non-standard exception");
    }
  }();
  if (applied)
    applied = p.tx.execute(upsert_version, e.aggregate_type, e.aggregate_id, e.version, e.sequence);
  if (!applied && !p.guarded) {
    if (!is_transient(applied.error())) p.needs_guard = true;
    return std::move(applied).error();
  }
  if (!applied) {
    JETSOURCE_TRY(p.tx.execute("ROLLBACK TO jetsource_message"));
    JETSOURCE_TRY(p.tx.execute("RELEASE jetsource_message"));
    if (is_transient(applied.error())) return std::move(applied).error();
    auto type = applied.error().message.substr(0, applied.error().message.find(':'));
    JETSOURCE_TRY(dead_letter(p, e, "poison", type, fmt::format("{}", applied.error())));
    p.parked.emplace(key);
    p.done.push_back(&e);
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
  if (p.guarded) {
    JETSOURCE_TRY(p.tx.execute("RELEASE jetsource_message"));
  }
  p.undo.emplace_back(slot, v0);
  *slot = e.version;
  p.events += e.version - e.first_version + 1;
  p.done.push_back(&e);

  // The next commit of this aggregate may be waiting: held from an earlier batch, or from this
  // one. Duplicates among the held ones are done too.
  std::uint64_t v = e.version;
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
  if (versions_.size() >= max_cached_) versions_.clear();
  for (bool guarded : {false, true}) {
    JETSOURCE_TRY(tx, db.begin());
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
  JETSOURCE_TRY(
      tx.execute("UPDATE projection_state SET max_sequence = max(max_sequence, ?1), "
                 "applied_sequence = max(applied_sequence, ?2), "
                 "events_applied = events_applied + ?3, updated_at = ?4 "
                 "WHERE projection = ?5",
                 p.max_sequence, applied_sequence, p.events, p.now, projection_.name()));
  JETSOURCE_TRY(tx.commit());

  // Committed: make the staged state real.
  batch_outcome out;
  out.events = p.events;
  out.duplicates = p.duplicates;
  out.done.reserve(p.done.size());
  for (envelope* e : p.done) out.done.push_back(std::move(*e));
  for (const auto& [key, first] : p.taken) {
    auto it = held_.find(key);
    it->second.erase(first);
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

result<std::size_t> applier::retry(sqlite::database& db, std::string_view aggregate_type,
                                   std::string_view aggregate_id, bool skip_first) {
  auto key = aggregate_key(aggregate_type, aggregate_id);
  JETSOURCE_TRY(tx, db.begin());
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
        JETSOURCE_TRY(tx.execute("SAVEPOINT jetsource_message"));
        projection_context cx(tx, e.aggregate_type, e.aggregate_id, e.sequence);
        auto applied = run_handlers(cx, e);
        if (!applied) {
          JETSOURCE_TRY(tx.execute("ROLLBACK TO jetsource_message"));
          JETSOURCE_TRY(tx.execute("RELEASE jetsource_message"));
          if (is_transient(applied.error())) return std::move(applied).error();
          auto type = applied.error().message.substr(0, applied.error().message.find(':'));
          JETSOURCE_TRY(
              tx.execute("UPDATE dead_letters SET kind = 'poison', event_type = ?1, error = ?2, "
                         "attempts = attempts + 1, last_failed_at = ?3 WHERE sequence = ?4",
                         type, fmt::format("{}", applied.error()), p.now, e.sequence));
          break;
        }
        JETSOURCE_TRY(tx.execute("RELEASE jetsource_message"));
        p.events += e.version - e.first_version + 1;
      }
      if (e.malformed.empty() && e.version > v0) {
        JETSOURCE_TRY(
            tx.execute(upsert_version, e.aggregate_type, e.aggregate_id, e.version, e.sequence));
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
