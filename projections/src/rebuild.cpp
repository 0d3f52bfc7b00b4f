// jetsource::rebuild: replay into a new generation file, then switch (docs/adr/0008).
#include <jetsource/rebuild.hpp>

#include "files.hpp"
#include "log.hpp"
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
  const auto& db = live.database;
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

  auto& c = *detail::state_of(conn);
  JETSOURCE_TRY(consumer, detail::rebuild_consumer(p, live));
  rebuild_result out;

  // Resume an interrupted rebuild of the same version, or start a new generation.
  std::filesystem::path file;
  if (auto building = detail::read_marker(detail::with_suffix(db, ".rebuilding"))) {
    auto version = built_version(*building, p.name());
    if (version && *version == p.version() && std::filesystem::exists(*building)) {
      file = *building;
      out.resumed = true;
      detail::log()->info("projection {}: resuming the rebuild in {}", p.name(), file.string());
    } else {
      detail::log()->info("projection {}: discarding an unfinished rebuild ({})", p.name(),
                          building->string());
      detail::remove_database_files(*building);
      JETSOURCE_TRY(detail::delete_consumer(c, live.stream, consumer));
    }
  }
  if (file.empty()) {
    JETSOURCE_TRY(detail::delete_consumer(c, live.stream, consumer));
    int generation = detail::generation_of(db, detail::current_file(db)) + 1;
    file = detail::with_suffix(db, fmt::format(".g{}", generation));
    detail::remove_database_files(file);
    JETSOURCE_TRY(detail::write_marker(detail::with_suffix(db, ".rebuilding"), file));
  }
  out.file = file;

  projector_options ro = live;
  ro.database = file;
  ro.consumer = consumer;
  ro.workers = o.workers;
  ro.batch = o.batch;
  ro.max_group = o.max_group;
  ro.max_buffered = std::max(o.max_buffered, static_cast<std::size_t>(o.batch) * 4);
  ro.sqlite.synchronous = sqlite::synchronous::off;  // a throwaway file until the switch
  ro.cumulative_acks = true;                         // one ack per group commit
  ro.on_committed = nullptr;

  // A poison event: the replay cannot produce the model; throw the file away, keep the live one.
  auto discard = [&](std::uint64_t dead) -> error {
    auto what = make_error(errc::rejected,
                           "rebuild of projection {} stopped: {} event(s) could not be applied "
                           "(a handler failed or a payload is undecodable); the live model is "
                           "untouched and the rebuilt file was removed",
                           p.name(), dead);
    if (auto list = [&]() -> result<std::vector<dead_letter>> {
          JETSOURCE_TRY(fdb, sqlite::database::open(file.string()));
          return read_dead_letters(fdb);
        }();
        list && !list->empty())
      what.message += fmt::format("; first: sequence {} ({}/{}): {}", list->front().sequence,
                                  list->front().aggregate_type, list->front().aggregate_id,
                                  list->front().error);
    detail::remove_database_files(file);
    std::error_code ec;
    std::filesystem::remove(detail::with_suffix(db, ".rebuilding"), ec);
    (void)detail::delete_consumer(c, live.stream, consumer);
    return what;
  };

  const auto t0 = clock::now();
  std::uint64_t caught_up = 0;
  // What a resumed file already holds, read before its projector starts applying.
  std::uint64_t events_before = 0;
  if (std::filesystem::exists(file)) {
    sqlite::options read_only;
    read_only.read_only = true;
    read_only.create = false;
    if (auto fdb = sqlite::database::open(file.string(), read_only))
      if (auto st = read_status(*fdb, p.name())) events_before = st->events_applied;
  }
  {
    JETSOURCE_TRY(rp, projector::start(conn, p, ro));
    JETSOURCE_TRY(set_status(file, p.name(), "rebuilding"));
    for (;;) {
      JETSOURCE_TRY(head, stream_last_sequence(c, live.stream));
      if (rp.wait_for(head, std::chrono::milliseconds(200))) {
        caught_up = head;
        break;
      }
      JETSOURCE_TRY(st, rp.status());
      if (st.dead_letters > 0) {
        (void)rp.stop();
        return discard(st.dead_letters);
      }
      if (o.progress) {
        rebuild_progress pr;
        pr.projection = p.name();
        pr.done = st.last_applied_seq;
        pr.total = head;
        double secs = std::chrono::duration<double>(clock::now() - t0).count();
        pr.events_per_s =
            secs > 0 ? static_cast<double>(st.events_applied - events_before) / secs : 0;
        double per_seq = secs > 0 ? static_cast<double>(pr.done) / secs : 0;
        pr.eta_s = per_seq > 0 ? static_cast<double>(head - std::min(head, pr.done)) / per_seq : 0;
        pr.resumed = out.resumed;
        o.progress(pr);
      }
    }
    JETSOURCE_TRY(st, rp.status());
    if (st.dead_letters > 0) {
      (void)rp.stop();
      return discard(st.dead_letters);
    }
    out.events = st.events_applied - events_before;
    if (o.progress) {
      double secs = std::chrono::duration<double>(clock::now() - t0).count();
      o.progress({p.name(), caught_up, caught_up,
                  secs > 0 ? static_cast<double>(out.events) / secs : 0, 0, out.resumed});
    }
    JETSOURCE_TRY(rp.stop());
  }
  JETSOURCE_TRY(set_status(file, p.name(), "live"));
  out.sequence = caught_up;

  // Switch: by ourselves when no live projector holds the database, else hand over to it.
  auto live_lock = detail::file_lock::try_acquire(detail::with_suffix(db, ".lock"));
  if (live_lock) {
    JETSOURCE_TRY(detail::adopt_file(c, p, live, file));
  } else if (live_lock.error().is(errc::busy)) {
    JETSOURCE_TRY(detail::write_marker(detail::with_suffix(db, ".ready"), file));
    std::error_code ec;
    std::filesystem::remove(detail::with_suffix(db, ".rebuilding"), ec);
    auto deadline = clock::now() + o.adopt_timeout;
    while (std::filesystem::exists(detail::with_suffix(db, ".ready"))) {
      if (clock::now() > deadline)
        return make_error(errc::timeout,
                          "projection {}: the live projector did not adopt the rebuilt file "
                          "within {} ms; it will when it next checks or starts",
                          p.name(), o.adopt_timeout.count());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    out.adopted_by_live = true;
  } else {
    return std::move(live_lock).error();
  }
  out.seconds = std::chrono::duration<double>(clock::now() - t0).count();
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
