// detail: switching a projection database to a rebuilt file (docs/adr/0008).
#include "switching.hpp"

#include "files.hpp"
#include "log.hpp"
#include "patience.hpp"

namespace jetsource::detail {

result<void> adopt_file(connection_state& c, const projection& p, const projector_options& o,
                        const std::filesystem::path& file) {
  auto old = current_file(o.database);
  JETSOURCE_TRY(point_to(o.database, file));
  std::error_code ec;
  std::filesystem::remove(with_suffix(o.database, ".ready"), ec);
  if (auto building = read_marker(with_suffix(o.database, ".rebuilding"));
      building && *building == file)
    std::filesystem::remove(with_suffix(o.database, ".rebuilding"), ec);
  const auto who = "projection " + p.name();
  JETSOURCE_TRY(rebuilder, rebuild_consumer(p, o));
  JETSOURCE_TRY(
      patiently(who, o.start_patience, [&] { return delete_consumer(c, o.stream, rebuilder); }));
  // The live consumer's position belongs to the old file: the next start creates it again from
  // the rebuilt file's applied mark (dedup skips what the file already has).
  JETSOURCE_TRY(live, live_consumer(p, o));
  JETSOURCE_TRY(
      patiently(who, o.start_patience, [&] { return delete_consumer(c, o.stream, live); }));
  if (old != file) remove_database_files(old);
  log()->info("projection {}: now serving {}", p.name(), file.string());
  return success();
}

void describe_rebuild(projection_status& out, const std::filesystem::path& database,
                      std::string_view name) {
  auto ready = read_marker(with_suffix(database, ".ready"));
  auto building = ready ? ready : read_marker(with_suffix(database, ".rebuilding"));
  if (!building) return;
  // A rebuild holds <db>.rebuild.lock while it runs: a marker nobody holds was left by one that
  // was killed (running `rebuild` again resumes it).
  out.rebuild = ready                                                     ? "ready"
                : file_lock::held(with_suffix(database, ".rebuild.lock")) ? "running"
                                                                          : "interrupted";
  sqlite::options ro;
  ro.read_only = true;
  ro.create = false;
  if (auto db = sqlite::database::open(building->string(), ro))
    if (auto st = read_status(*db, name)) out.rebuild_applied_seq = st->last_applied_seq;
}

}  // namespace jetsource::detail
