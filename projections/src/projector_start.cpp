// detail: a projector's start, up to its threads: the options checked, the database locked,
// opened (checked, migrated) and resumed where it stands on its stream, the consumer bound.
#include "projector_start.hpp"

#include <jetsource/migrations.hpp>

#include "consumer_admin.hpp"
#include "files.hpp"
#include "integrity.hpp"
#include "log.hpp"
#include "patience.hpp"

#include <algorithm>
#include <filesystem>

namespace jetsource::detail {

// Opens the database, applies jetsource's and the projection's migrations, and makes sure its
// projection_state row exists. Returns the row's version (the one the database was built with).
result<int> prepare_database(sqlite::database& db, const projection& p, std::string_view stream,
                             std::string_view consumer) {
  JETSOURCE_TRY(own, migrations::embedded("jetsource"));
  JETSOURCE_TRY(migrations::apply(db, own, "jetsource"));
  auto list = migrations::embedded(p.migrations_database());
  if (!list && list.error().is(errc::not_found))  // else every event would be a dead letter
    return make_error(errc::not_found,
                      "projection {}: no migrations are embedded under \"{}\" (embedded: {}); "
                      "embed them with jetsource_embed_migrations(<target> <dir> {}), or name "
                      "the embedded set with .migrations(\"<name>\")",
                      p.name(), p.migrations_database(),
                      fmt::join(migrations::embedded_databases(), ", "), p.migrations_database());
  if (!list) return std::move(list).error();
  auto applied = migrations::apply(db, *list, p.migrations_database());
  if (!applied)
    return make_error(applied.error().code, "projection {}: {}", p.name(), applied.error().message);
  JETSOURCE_TRY(
      db.execute("INSERT INTO projection_state (projection, version, stream, consumer, "
                 "updated_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                 "ON CONFLICT (projection) DO NOTHING",
                 p.name(), p.version(), stream, consumer, utc_now()));
  JETSOURCE_TRY(
      row, db.query_one("SELECT version FROM projection_state WHERE projection = ?1", p.name()));
  return row->get<int>(0);
}

namespace {

result<void> validate_projection_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
      }))
    return make_error(errc::invalid_argument,
                      "projection name '{}': use 1-64 letters, digits, '_' or '-'", name);
  return success();
}

}  // namespace

result<void> validate(const projection& p, const projector_options& o) {
  JETSOURCE_TRY(validate_projection_name(p.name()));
  if (o.stream.empty()) return make_error(errc::invalid_argument, "projector: no stream given");
  if (o.database.empty())
    return make_error(errc::invalid_argument, "projector: no database file given");
  if (o.workers < 1 || o.batch < 1 || o.max_group < 1 ||
      o.max_buffered < static_cast<std::size_t>(o.batch))
    return make_error(errc::invalid_argument,
                      "projector: workers, batch and max_group must be >= 1, max_buffered >= "
                      "batch");
  return success();
}

result<file_lock> lock_database(const projection& p, const projector_options& o) {
  if (!o.database.parent_path().empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.database.parent_path(), ec);
    if (ec)
      return make_error(errc::io, "cannot create {}: {}", o.database.parent_path().string(),
                        ec.message());
  }
  auto lock = file_lock::try_acquire(with_suffix(o.database, ".lock"));
  if (!lock && lock.error().is(errc::busy))
    return make_error(errc::busy, "projection {} already runs on {} in another process", p.name(),
                      o.database.string());
  return lock;
}

result<sqlite::database> open_database(projector_state& s, const projector_options& o) {
  auto refuse = [&](error e) {
    (void)write_text(with_suffix(o.database, ".failed"), to_string(e));
    return e;
  };
  auto opened = sqlite::database::open(s.file.string(), o.sqlite);
  if (!opened && opened.error().is(errc::corrupt))
    return refuse(rebuild_needed(s.file, opened.error()));
  if (!opened) return std::move(opened).error();
  auto db = std::move(opened).value();
  if (o.check_at_start) {
    if (auto good = check_integrity(db, s.file); !good)
      return good.error().is(errc::corrupt) ? refuse(std::move(good).error())
                                            : std::move(good).error();
  }
  JETSOURCE_TRY(built_with, prepare_database(db, s.proj, o.stream, s.consumer));
  if (built_with != s.proj.version())
    return make_error(errc::invalid_argument,
                      "projection {}: its database {} was built with version {}, the projection "
                      "is version {}: rebuild it",
                      s.proj.name(), s.file.string(), built_with, s.proj.version());
  return db;
}

result<void> resume(projector_state& s, sqlite::database& db, const projector_options& o) {
  const auto& p = s.proj;
  JETSOURCE_TRY(row, db.query_one("SELECT applied_sequence, max_sequence, events_applied, "
                                  "stream_created FROM projection_state WHERE projection = ?1",
                                  p.name()));
  const auto applied = row->get<std::uint64_t>(0), max_sequence = row->get<std::uint64_t>(1);
  s.events_applied = row->get<std::uint64_t>(2);
  s.stream_created = row->get<std::int64_t>(3);
  auto here = patiently("projection " + p.name(), o.start_patience,
                        [&] { return identify_stream(*s.conn, o.stream); });
  if (!here)
    return make_error(here.error().code, "projection {}: {}", p.name(), here.error().message);
  JETSOURCE_TRY(check_stream(p, o.stream, s.stream_created, max_sequence, *here));
  s.stream_head = here->last_sequence;
  s.stream_clustered = here->clustered;
  if (s.stream_created == 0) {
    s.stream_created = here->created;
    JETSOURCE_TRY(db.execute(
        "UPDATE projection_state SET stream_created = ?1, consumer = ?2 WHERE projection = ?3",
        here->created, s.consumer, p.name()));
  }
  JETSOURCE_TRY(acks, patiently("projection " + p.name(), o.start_patience,
                                [&] { return bind_consumer(*s.conn, s.consumer, p, o, applied); }));
  s.acks = acks;
  s.mark = applied;
  std::error_code no_marker;
  std::filesystem::remove(with_suffix(o.database, ".failed"), no_marker);  // it started well
  return success();
}

}  // namespace jetsource::detail
