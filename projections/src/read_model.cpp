// jetsource: reading a projection's database from any process: opening it, its status, its dead
// letters, waiting for a sequence (read-your-writes), and the SQLite settings projections use.
#include <jetsource/projector.hpp>

#include "applier.hpp"
#include "consumer_admin.hpp"
#include "files.hpp"
#include "switching.hpp"

#include <algorithm>
#include <thread>

namespace jetsource {

sqlite::options projection_sqlite_options() {
  sqlite::options o;
  o.synchronous = sqlite::synchronous::normal;
  o.cache_size_kib = 64 * 1024;
  o.page_size = 1024;
  o.wal_autocheckpoint_pages = 40'000;
  o.background_checkpoint = true;
  return o;
}

std::filesystem::path current_file(const std::filesystem::path& database) {
  return detail::current_file(database);
}

result<sqlite::database> open_read_model(const std::filesystem::path& database) {
  sqlite::options o;
  o.read_only = true;
  o.create = false;
  auto file = detail::current_file(database);
  if (!std::filesystem::exists(file))
    return make_error(errc::not_found, "no read model at {}", file.string());
  return sqlite::database::open(file.string(), o);
}

result<int> built_version(const std::filesystem::path& database, std::string_view projection_name) {
  JETSOURCE_TRY(db, open_read_model(database));
  auto row =
      db.query_one("SELECT version FROM projection_state WHERE projection = ?1", projection_name);
  if (!row) return make_error(errc::not_found, "{}: {}", database.string(), row.error().message);
  if (!*row)
    return make_error(errc::not_found, "no projection '{}' in {}", projection_name,
                      database.string());
  return (*row)->get<int>(0);
}

result<std::vector<dead_letter>> read_dead_letters(sqlite::database& db) {
  JETSOURCE_TRY(rows, db.query("SELECT sequence, aggregate_type, aggregate_id, first_version, "
                               "last_version, kind, event_type, error, subject, attempts, "
                               "first_failed_at, last_failed_at FROM dead_letters "
                               "ORDER BY sequence"));
  std::vector<dead_letter> out;
  out.reserve(rows.size());
  for (const auto& r : rows)
    out.push_back({r.get<std::uint64_t>(0), r.get<std::string>(1), r.get<std::string>(2),
                   r.get<std::uint64_t>(3), r.get<std::uint64_t>(4), r.get<std::string>(5),
                   r.get<std::string>(6), r.get<std::string>(7), r.get<std::string>(8),
                   r.get<int>(9), r.get<std::string>(10), r.get<std::string>(11)});
  return out;
}

result<projection_status> read_status(sqlite::database& db, std::string_view projection_name) {
  JETSOURCE_TRY(row, db.query_one("SELECT version, consumer, status, applied_sequence, "
                                  "max_sequence, events_applied, events_per_s, "
                                  "(SELECT count(*) FROM dead_letters), applied_event_time, "
                                  "coalesce((julianday('now') - "
                                  "julianday(nullif(applied_event_time, ''))) * 86400.0, 0) "
                                  "FROM projection_state WHERE projection = ?1",
                                  projection_name));
  if (!row)
    return make_error(errc::not_found, "no projection '{}' in {}", projection_name, db.path());
  projection_status s;
  s.name = std::string(projection_name);
  s.version = s.database_version = row->get<int>(0);
  s.consumer = row->get<std::string>(1);
  s.state = row->get<std::string>(2);
  s.last_applied_seq = row->get<std::uint64_t>(3);
  s.max_applied_seq = row->get<std::uint64_t>(4);
  s.events_applied = row->get<std::uint64_t>(5);
  s.events_per_s = row->get<double>(6);
  s.dead_letters = row->get<std::uint64_t>(7);
  s.applied_event_time = row->get<std::string>(8);
  s.lag_seconds = std::max(row->get<double>(9), 0.0);  // SQLite reads the RFC 3339 time
  s.database = db.path();
  return s;
}

namespace {

// The creation time of the stream the file at `db` was built from (0: not recorded).
std::int64_t recorded_stream(sqlite::database& db, std::string_view projection_name) {
  auto row = db.query_one("SELECT stream_created FROM projection_state WHERE projection = ?1",
                          projection_name);
  return row && *row ? (**row).get<std::int64_t>(0) : 0;
}

}  // namespace

result<projection_status> read_status(const connection& conn, const projection& p,
                                      const projector_options& o) {
  auto fail = [&](const error& e) {
    return make_error(e.code, "projection {}: {}", p.name(), e.message);
  };
  projection_status out;
  std::int64_t built_from = 0;
  if (auto db = open_read_model(o.database)) {
    auto st = read_status(*db, p.name());
    if (!st) return fail(st.error());
    out = std::move(st).value();
    built_from = recorded_stream(*db, p.name());
    if (out.state == "live" && !detail::file_lock::held(detail::with_suffix(o.database, ".lock")))
      out.state = "stopped";  // no projector runs on it
    if (auto why = detail::read_text(detail::with_suffix(o.database, ".failed"))) {
      out.state = "failed";  // what the projector found, until a start finds the file good
      out.error = *why;
    }
  } else if (db.error().is(errc::not_found)) {
    auto consumer = detail::copy_consumer(p, o, false);
    if (!consumer) return fail(consumer.error());
    out.name = p.name();
    out.state = "not built";
    out.consumer = consumer->value_or("");
    out.database = detail::current_file(o.database).string();
  } else {
    return fail(db.error());
  }
  out.version = p.version();
  auto& c = *detail::state_of(conn);
  auto stream = detail::identify_stream(c, o.stream);
  if (!stream && !stream.error().is(errc::not_found)) return fail(stream.error());
  if (stream) {
    // Lag from the file's own mark: the consumer may belong to another file.
    auto lag =
        detail::messages_after(c, o.stream, *stream, p.subject_filter(), out.last_applied_seq);
    if (!lag) return fail(lag.error());
    out.pending = *lag;
    if (out.pending == 0) out.lag_seconds = 0;
    if (auto same = detail::check_stream(p, o.stream, built_from, out.max_applied_seq, *stream);
        !same) {
      out.state = "failed";
      out.error = to_string(same.error());
    }
  }
  detail::describe_rebuild(out, o.database, p.name());
  return out;
}

result<void> wait_applied(const std::filesystem::path& path, std::string_view projection_name,
                          std::uint64_t sequence, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Opened each time: the file may not exist yet, and a rebuild may switch it.
    std::uint64_t applied = 0;
    if (auto db = open_read_model(path)) {
      auto row = db->query_one(
          "SELECT applied_sequence FROM projection_state WHERE projection = ?1", projection_name);
      if (row && *row) applied = (*row)->get<std::uint64_t>(0);
    }
    if (applied >= sequence) return success();
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::timeout,
                        "projection {}: sequence {} not applied within {} ms (applied up to {})",
                        projection_name, sequence, timeout.count(), applied);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace jetsource
