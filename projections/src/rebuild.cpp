// jetsource::rebuild: replay into a new generation file, then switch (docs/adr/0008).
#include <jetsource/rebuild.hpp>

#include "files.hpp"
#include "log.hpp"
#include "patience.hpp"
#include "switching.hpp"

#include <nats/nats.h>

#include <thread>

namespace jetsource {

namespace {

using clock = std::chrono::steady_clock;

result<std::uint64_t> stream_last_sequence(detail::connection_state& c, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode code{};
  natsStatus s = js_GetStreamInfo(&si, c.js.get(), stream.c_str(), nullptr, &code);
  if (s != NATS_OK) return detail::nats_error(s, "stream info of " + stream, code);
  detail::stream_info_ptr holder(si);
  return si->State.LastSeq;
}

result<void> set_status(const std::filesystem::path& file, std::string_view name,
                        std::string_view status) {
  JETSOURCE_TRY(db, sqlite::database::open(file.string()));
  JETSOURCE_TRY(
      db.execute("UPDATE projection_state SET status = ?1 WHERE projection = ?2", status, name));
  if (status == "live") {
    // Built with synchronous=OFF: make every page durable before anyone switches to it.
    JETSOURCE_TRY(db.execute("PRAGMA synchronous = FULL"));
    JETSOURCE_TRY(db.execute_script("PRAGMA wal_checkpoint(TRUNCATE)"));
  }
  return success();
}

// What one rebuild works with, shared by its steps below.
struct rebuild_job {
  const connection& conn;
  detail::connection_state& c;
  const projection& p;
  const projector_options& live;
  const rebuild_options& o;
  std::string consumer;
  clock::time_point t0;       // when the replay started
  clock::time_point stopped;  // when the replay's projector had stopped (for the log)
};

double ms_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The rebuild's own consumer goes before a new generation starts (asked again while a cluster
// elects a leader, for the live options' start_patience).
result<void> delete_rebuild_consumer(const rebuild_job& j) {
  return detail::patiently("rebuild of projection " + j.p.name(), j.live.start_patience,
                           [&] { return detail::delete_consumer(j.c, j.live.stream, j.consumer); });
}

// One rebuild per database at a time, and none while a finished one waits to be adopted.
result<detail::file_lock> take_rebuild_lock(const projection& p, const std::filesystem::path& db) {
  if (!db.parent_path().empty()) std::filesystem::create_directories(db.parent_path());
  auto guard = detail::file_lock::try_acquire(detail::with_suffix(db, ".rebuild.lock"));
  if (!guard) {
    if (guard.error().is(errc::busy))
      return make_error(errc::busy, "a rebuild of projection {} is already running", p.name());
    return std::move(guard).error();
  }
  if (auto ready = detail::read_marker(detail::with_suffix(db, ".ready")))
    return make_error(errc::busy,
                      "a finished rebuild of projection {} ({}) waits for the live projector to "
                      "adopt it: start the projector (or serve)",
                      p.name(), ready->filename().string());
  return guard;
}

// Resume an interrupted rebuild of the same version, or start a new generation.
result<std::filesystem::path> choose_generation(const rebuild_job& j, bool& resumed) {
  const auto& db = j.live.database;
  std::filesystem::path file;
  if (auto building = detail::read_marker(detail::with_suffix(db, ".rebuilding"))) {
    auto version = built_version(*building, j.p.name());
    if (version && *version == j.p.version() && std::filesystem::exists(*building)) {
      file = *building;
      resumed = true;
      detail::log()->info("projection {}: resuming the rebuild in {}", j.p.name(), file.string());
    } else {
      detail::log()->info("projection {}: discarding an unfinished rebuild ({})", j.p.name(),
                          building->string());
      detail::remove_database_files(*building);
      JETSOURCE_TRY(delete_rebuild_consumer(j));
    }
  }
  if (file.empty()) {
    JETSOURCE_TRY(delete_rebuild_consumer(j));
    int generation = detail::generation_of(db, detail::current_file(db)) + 1;
    file = detail::with_suffix(db, fmt::format(".g{}", generation));
    detail::remove_database_files(file);
    JETSOURCE_TRY(detail::write_marker(detail::with_suffix(db, ".rebuilding"), file));
  }
  return file;
}

// The projector that replays into `file`: the live options, tuned for a bulk load.
projector_options replay_options(const rebuild_job& j, const std::filesystem::path& file) {
  projector_options ro = j.live;
  ro.database = file;
  ro.consumer = j.consumer;
  ro.workers = j.o.workers;
  ro.batch = j.o.batch;
  ro.max_group = j.o.max_group;
  ro.max_buffered = std::max(j.o.max_buffered, static_cast<std::size_t>(j.o.batch) * 4);
  ro.sqlite.synchronous = sqlite::synchronous::off;  // a throwaway file until the switch
  // Its position is the file's mark: nothing for the server to keep, on disk or in a pending
  // map (AckPolicy None; lost deliveries start the consumer over from the mark).
  ro.unacknowledged = true;
  ro.consumer_in_memory = true;
  ro.on_committed = nullptr;
  ro.on_fetched = nullptr;
  ro.metrics = nullptr;  // its series would repeat the live projector's
  return ro;
}

// Where a resumed file already stands (events and mark), read before its projector starts
// applying: where the rebuild's counts start. Zeros for a new file.
projection_status stand_of(const std::filesystem::path& file, std::string_view name) {
  if (std::filesystem::exists(file)) {
    sqlite::options read_only;
    read_only.read_only = true;
    read_only.create = false;
    if (auto fdb = sqlite::database::open(file.string(), read_only))
      if (auto st = read_status(*fdb, name)) return std::move(st).value();
  }
  return {};
}

// A poison event: the replay cannot produce the model; throw the file away, keep the live one.
error discard(const rebuild_job& j, const std::filesystem::path& file, std::uint64_t dead) {
  auto what = make_error(errc::rejected,
                         "rebuild of projection {} stopped: {} event(s) could not be applied "
                         "(a handler failed or a payload is undecodable); the live model is "
                         "untouched and the rebuilt file was removed",
                         j.p.name(), dead);
  if (auto list = [&]() -> result<std::vector<dead_letter>> {
        JETSOURCE_TRY(fdb, sqlite::database::open(file.string()));
        return read_dead_letters(fdb);
      }();
      list && !list->empty())
    what.message +=
        fmt::format("; first: sequence {} ({}/{}): {}", list->front().sequence,
                    list->front().aggregate_type, list->front().aggregate_id, list->front().error);
  detail::remove_database_files(file);
  std::error_code ec;
  std::filesystem::remove(detail::with_suffix(j.live.database, ".rebuilding"), ec);
  (void)detail::delete_consumer(j.c, j.live.stream, j.consumer);
  return what;
}

void report_progress(const rebuild_job& j, const projection_status& st, std::uint64_t head,
                     std::uint64_t events_before, std::uint64_t mark_before, bool resumed) {
  rebuild_progress pr;
  pr.projection = j.p.name();
  pr.done = st.last_applied_seq;
  pr.total = head;
  double secs = std::chrono::duration<double>(clock::now() - j.t0).count();
  pr.events_per_s = secs > 0 ? static_cast<double>(st.events_applied - events_before) / secs : 0;
  pr.commits_per_s =
      secs > 0 ? static_cast<double>(pr.done - std::min(pr.done, mark_before)) / secs : 0;
  pr.eta_s = pr.commits_per_s > 0
                 ? static_cast<double>(head - std::min(head, pr.done)) / pr.commits_per_s
                 : 0;
  pr.resumed = resumed;
  j.o.progress(pr);
}

// Runs a projector on `file` until it has applied the stream's head; returns that sequence and
// sets out.events. Dead letters discard the file.
result<std::uint64_t> replay(rebuild_job& j, const std::filesystem::path& file,
                             std::uint64_t events_before, std::uint64_t mark_before,
                             rebuild_result& out) {
  JETSOURCE_TRY(rp, projector::start(j.conn, j.p, replay_options(j, file)));
  JETSOURCE_TRY(set_status(file, j.p.name(), "rebuilding"));
  std::uint64_t caught_up = 0;
  for (;;) {
    JETSOURCE_TRY(head,
                  detail::patiently("rebuild of projection " + j.p.name(), j.live.start_patience,
                                    [&] { return stream_last_sequence(j.c, j.live.stream); }));
    if (rp.wait_for(head, std::chrono::milliseconds(200))) {
      caught_up = head;
      break;
    }
    JETSOURCE_TRY(st, rp.status());
    if (st.dead_letters > 0) {
      (void)rp.stop();
      return discard(j, file, st.dead_letters);
    }
    if (j.o.progress) report_progress(j, st, head, events_before, mark_before, out.resumed);
  }
  JETSOURCE_TRY(st, rp.status());
  if (st.dead_letters > 0) {
    (void)rp.stop();
    return discard(j, file, st.dead_letters);
  }
  out.events = st.events_applied - events_before;
  out.commits = caught_up - std::min(caught_up, mark_before);
  out.replay_seconds = std::chrono::duration<double>(clock::now() - j.t0).count();
  if (j.o.progress) {
    const double secs = out.replay_seconds;
    j.o.progress({j.p.name(), caught_up, caught_up,
                  secs > 0 ? static_cast<double>(out.events) / secs : 0, 0, out.resumed,
                  secs > 0 ? static_cast<double>(out.commits) / secs : 0});
  }
  JETSOURCE_TRY(rp.stop());
  j.stopped = clock::now();
  return caught_up;
}

// Switch: by ourselves when no live projector holds the database, else hand over to it.
result<void> switch_or_hand_over(const rebuild_job& j, const std::filesystem::path& file,
                                 rebuild_result& out) {
  const auto& db = j.live.database;
  auto live_lock = detail::file_lock::try_acquire(detail::with_suffix(db, ".lock"));
  if (live_lock) return detail::adopt_file(j.c, j.p, j.live, file);
  if (!live_lock.error().is(errc::busy)) return std::move(live_lock).error();
  JETSOURCE_TRY(detail::write_marker(detail::with_suffix(db, ".ready"), file));
  std::error_code ec;
  std::filesystem::remove(detail::with_suffix(db, ".rebuilding"), ec);
  const auto waiting = clock::now();
  auto deadline = waiting + j.o.adopt_timeout;
  while (std::filesystem::exists(detail::with_suffix(db, ".ready"))) {
    if (clock::now() > deadline)
      return make_error(errc::timeout,
                        "projection {}: the live projector did not adopt the rebuilt file "
                        "within {} ms; it will when it next checks or starts",
                        j.p.name(), j.o.adopt_timeout.count());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  out.adopted_by_live = true;
  out.adopt_seconds = std::chrono::duration<double>(clock::now() - waiting).count();
  return success();
}

}  // namespace

std::optional<rebuild_state> pending_rebuild(const std::filesystem::path& database,
                                             std::string_view projection_name) {
  projection_status st;
  detail::describe_rebuild(st, database, projection_name);
  if (st.rebuild.empty()) return std::nullopt;
  const bool ready = st.rebuild == "ready";
  auto file = detail::read_marker(detail::with_suffix(database, ready ? ".ready" : ".rebuilding"));
  return rebuild_state{file.value_or(std::filesystem::path{}), st.rebuild_applied_seq, ready};
}

result<rebuild_result> rebuild(const connection& conn, const projection& p,
                               const projector_options& live, const rebuild_options& o) {
  if (live.database.empty() || live.stream.empty())
    return make_error(errc::invalid_argument, "rebuild: the live options need stream and database");
  auto guard = take_rebuild_lock(p, live.database);  // held until the rebuild returns
  if (!guard) return std::move(guard).error();
  JETSOURCE_TRY(consumer, detail::rebuild_consumer(p, live));
  rebuild_job job{conn, *detail::state_of(conn), p, live, o, std::move(consumer), {}};
  rebuild_result out;
  JETSOURCE_TRY(file, choose_generation(job, out.resumed));
  out.file = file;

  job.t0 = clock::now();
  const auto before = stand_of(file, p.name());
  const std::uint64_t events_before = before.events_applied, mark_before = before.last_applied_seq;
  JETSOURCE_TRY(caught_up, replay(job, file, events_before, mark_before, out));
  JETSOURCE_TRY(set_status(file, p.name(), "live"));
  out.sequence = caught_up;
  const auto durable = clock::now();

  JETSOURCE_TRY(switch_or_hand_over(job, file, out));
  const auto end = clock::now();
  out.seconds = std::chrono::duration<double>(end - job.t0).count();
  const auto caught = job.t0 + std::chrono::duration_cast<clock::duration>(
                                   std::chrono::duration<double>(out.replay_seconds));
  detail::log()->info(
      "projection {}: rebuilt into {} in {:.3f} s: {} events replayed in {:.3f} s, then stop "
      "{:.1f} ms, durable {:.1f} ms, {} {:.1f} ms",
      p.name(), file.filename().string(), out.seconds, out.events, out.replay_seconds,
      ms_between(caught, job.stopped), ms_between(job.stopped, durable),
      out.adopted_by_live ? "adopted by the live projector" : "switch", ms_between(durable, end));
  return out;
}

result<projector> start_or_rebuild(const connection& conn, const projection& p,
                                   const projector_options& o, const rebuild_options& ro) {
  if (auto built = built_version(o.database, p.name()); built && *built != p.version()) {
    detail::log()->info(
        "projection {}: database built with version {}, projection is version "
        "{}: rebuilding (the old file serves reads meanwhile)",
        p.name(), *built, p.version());
    JETSOURCE_TRY(rebuild(conn, p, o, ro));
  }
  return projector::start(conn, p, o);
}

}  // namespace jetsource
