// jetsource::projector: ties the read side's engine together for one projection: opens the
// database and binds the consumer (projector_start.cpp), starts the fetcher (fetch_loop.cpp)
// and the keyed workers (apply_loop.cpp), and stops them; status, read-your-writes and
// dead-letter repair.
#include <jetsource/event_store.hpp>
#include <jetsource/projector.hpp>

#include "consumer_admin.hpp"
#include "files.hpp"
#include "log.hpp"
#include "projector_start.hpp"
#include "projector_state.hpp"
#include "switching.hpp"
#include "thread_name.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

namespace jetsource {

namespace detail {

namespace {

// The engine: an applier per worker (each with the parked aggregates of its keys), the pull
// fetcher, the keyed workers, and the fetcher thread.
result<void> start_engine(projector_state& s) {
  const auto count = static_cast<std::size_t>(s.opts.workers);
  for (std::size_t index = 0; index < count; ++index) {
    auto slot = std::make_unique<projector_state::slot>();
    slot->apply = std::make_unique<applier>(s.proj);
    JETSOURCE_TRY(slot->apply->load_parked(
        *s.db, [&](std::string_view id) { return fnv1a32(id) % count == index; }));
    s.slots.push_back(std::move(slot));
  }
  JETSOURCE_TRY(pull, pull_fetcher::open(s.nc, s.opts.stream, s.consumer, s.proj.name()));
  s.pull.emplace(std::move(pull));
  s.workers = std::make_unique<keyed_workers<envelope>>(
      count, s.opts.max_group,
      [st = &s](std::size_t index, std::vector<envelope>& batch) { st->apply_batch(index, batch); },
      "js-apply");
  s.fetcher = std::thread([st = &s] {
    name_this_thread("js-fetch");
    st->run_fetcher();
  });
  s.watcher = std::thread([st = &s] {
    name_this_thread("js-watch");
    st->run_watcher();
  });
  return success();
}

}  // namespace

}  // namespace detail

result<projector> projector::start(const connection& conn, projection p, projector_options o) {
  JETSOURCE_TRY(detail::validate(p, o));
  auto s = std::make_unique<detail::projector_state>(conn, p);
  s->conn = detail::state_of(conn);
  s->nc = s->conn->nc.get();
  JETSOURCE_TRY(lock, detail::lock_database(p, o));
  s->live_lock.emplace(std::move(lock));
  JETSOURCE_TRY(consumer, detail::live_consumer(p, o));
  s->consumer = std::move(consumer);
  // A rebuild that finished while no projector ran: adopt it now.
  if (auto ready = detail::read_marker(detail::with_suffix(o.database, ".ready"))) {
    JETSOURCE_TRY(detail::adopt_file(*s->conn, p, o, *ready));
  }
  s->file = detail::current_file(o.database);
  JETSOURCE_TRY(db, detail::open_database(*s, o));
  JETSOURCE_TRY(detail::resume(*s, db, o));
  s->db.emplace(std::move(db));
  s->opts = std::move(o);
  JETSOURCE_TRY(detail::start_engine(*s));
  if (s->opts.metrics) s->metrics_watch = detail::watch_projector(*s, *s->opts.metrics);
  return projector(std::move(s));
}

projector::projector(std::unique_ptr<detail::projector_state> s) noexcept : state_(std::move(s)) {}
projector::projector(projector&&) noexcept = default;
projector& projector::operator=(projector&& other) noexcept {
  if (this != &other) {
    (void)stop();
    state_ = std::move(other.state_);
  }
  return *this;
}
projector::~projector() {
  (void)stop();
}

std::optional<error> projector::failure() const {
  return state_ ? state_->failure_reason() : std::nullopt;
}

const std::string& projector::name() const noexcept {
  return state_->proj.name();
}

result<bool> projector::adopt_rebuild() {
  if (!state_) return false;
  auto ready = detail::read_marker(detail::with_suffix(state_->opts.database, ".ready"));
  if (!ready) return false;
  connection conn = state_->conn_handle;
  projection p = state_->proj;
  projector_options opts = state_->opts;
  JETSOURCE_TRY(stop());
  const std::uint64_t position = state_->mark.load();
  state_.reset();  // closes the database, releases the live lock
  auto switched = [&]() -> result<void> {
    // The rebuilt file continues on the rebuild's consumer up to where this projector stopped.
    projector_options catch_up = opts;
    catch_up.database = *ready;
    JETSOURCE_TRY(rebuilder, detail::rebuild_consumer(p, opts));
    catch_up.consumer = std::move(rebuilder);
    catch_up.on_committed = nullptr;
    catch_up.on_fetched = nullptr;
    catch_up.metrics = nullptr;  // a passing projector on the rebuilt file
    JETSOURCE_TRY(rebuilt, start(conn, p, catch_up));
    JETSOURCE_TRY(rebuilt.wait_for(position, std::chrono::minutes(5)));
    JETSOURCE_TRY(rebuilt.stop());
    return detail::adopt_file(*detail::state_of(conn), p, opts, *ready);
  }();
  // Live again: on the rebuilt file, or (when the switch failed) on the one it served before.
  auto restarted = start(conn, p, opts);
  if (!restarted) return std::move(restarted).error();
  *this = std::move(restarted).value();
  if (!switched)
    return make_error(switched.error().code,
                      "projection {}: could not adopt the rebuilt file {} (still serving the "
                      "old one): {}",
                      p.name(), ready->string(), switched.error().message);
  return true;
}

result<void> projector::stop() {
  if (!state_) return success();
  auto& s = *state_;
  std::lock_guard lk(s.stop_mutex);
  if (s.stopped) return success();
  s.stopped = true;
  s.stop_deadline = std::chrono::steady_clock::now() + s.opts.drain_timeout;
  s.stopping = true;
  {
    std::lock_guard wl(s.watch_mutex);  // the watcher sees `stopping` as it waits, or next time
  }
  s.watch_wake.notify_all();
  if (s.pull) s.pull->wake();  // the fetcher sees `stopping` now, not after its wait (20 ms)
  if (s.watcher.joinable()) s.watcher.join();
  if (s.fetcher.joinable()) s.fetcher.join();  // ends when its requests are answered or expired
  if (s.workers) s.workers->drain();           // what they were given, within the deadline
  // Held messages wait for an earlier one: let the server send them again at once.
  for (auto& slot : s.slots)
    slot->apply->release_held(
        [&](const detail::envelope& e) { detail::ack(s.nc, e.reply, "-NAK"); });
  s.pull.reset();                           // unsubscribes (the durable consumer stays)
  natsConnection_FlushTimeout(s.nc, 2000);  // the last acks
  if (s.db) {
    (void)s.persist_mark(s.mark.load(), 0);
    std::lock_guard dl(s.db_mutex);
    (void)s.db->execute("PRAGMA wal_checkpoint(PASSIVE)");
  }
  s.live_lock.reset();  // another projector may take the database over now
  return success();
}

result<void> projector::wait_for(std::uint64_t sequence, std::chrono::milliseconds timeout) {
  if (!state_) return make_error(errc::invalid_argument, "projector: not running");
  auto& s = *state_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto next_probe = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  std::uint64_t seen = s.mark.load();
  for (;;) {
    const std::uint64_t mark = s.mark.load();
    if (mark >= sequence) return success();
    if (auto f = s.failure_reason()) return *f;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return make_error(errc::timeout,
                        "projection {}: sequence {} not applied within {} ms "
                        "(applied up to {})",
                        s.proj.name(), sequence, timeout.count(), s.mark.load());
    // A sequence the consumer's filter does not match is never delivered: it counts as applied
    // once the consumer has nothing pending or unacknowledged beyond the stream's last sequence,
    // by its leader's word (consumer_drained: a rebuild once switched to a file without the
    // events, on a zeroed answer for a consumer created during an election).
    // Asked only once the mark stood still for a while: while it moves, the answer is "not yet",
    // and each question is two JetStream API requests the server answers beside the deliveries.
    if (mark != seen) {
      seen = mark;
      next_probe = now + std::chrono::milliseconds(50);
    } else if (now >= next_probe) {
      next_probe = now + std::chrono::milliseconds(50);
      jsStreamInfo* si = nullptr;
      jsErrCode code{};
      if (js_GetStreamInfo(&si, s.conn->js.get(), s.opts.stream.c_str(), nullptr, &code) ==
          NATS_OK) {
        detail::stream_info_ptr holder(si);
        std::uint64_t last = si->State.LastSeq;
        detail::consumer_info_ptr ch;
        // AckPolicy None: nothing is pending acknowledgement, so what was delivered must be
        // applied as well (the mark was read before the consumer's answer).
        if (auto ci = s.consumer_info(ch);
            ci && last >= sequence && detail::consumer_drained(*si, **ci) &&
            (s.acks != detail::ack_mode::none || mark >= (*ci)->Delivered.Stream))
          return success();
      }
    }
    std::unique_lock lk(s.mark_mutex);
    s.mark_changed.wait_until(lk, std::min(deadline, next_probe),
                              [&] { return s.mark.load() >= sequence; });
  }
}

result<projection_status> projector::status() const {
  if (!state_) return make_error(errc::invalid_argument, "projector: not running");
  auto& s = *state_;
  projection_status out;
  {
    std::lock_guard lk(s.db_mutex);
    JETSOURCE_TRY(st, read_status(*s.db, s.proj.name()));
    out = std::move(st);
  }
  out.version = s.proj.version();
  out.state = s.failed ? "failed" : s.stopping ? "stopped" : "live";
  if (auto f = s.failure_reason()) out.error = to_string(*f);
  out.last_applied_seq = std::max(out.last_applied_seq, s.mark.load());
  out.events_per_s = s.events_per_s.load();
  out.database = s.file.string();
  out.held = s.held();
  detail::describe_rebuild(out, s.opts.database, s.proj.name());
  out.duplicates = s.duplicates.load();
  if (auto backlog = s.consumer_backlog()) {
    out.pending = *backlog;
  } else {
    // The consumer's leader did not answer (an election, a reconnect): its zeroed answer would
    // read as "caught up". Counted from the stream instead, as `projections status` counts a
    // stopped projection's lag; when the stream does not answer either, its last sequence the
    // watcher saw bounds it (that counts subjects a filter skips: it may say more).
    const auto mark = s.mark.load();
    std::optional<std::uint64_t> counted;
    if (auto now = detail::identify_stream(*s.conn, s.opts.stream)) {
      s.stream_head = now->last_sequence;
      if (auto lag =
              detail::messages_after(*s.conn, s.opts.stream, *now, s.proj.subject_filter(), mark))
        counted = *lag;
    }
    const auto head = s.stream_head.load();
    out.pending = counted.value_or(head > mark ? head - mark : 0);
  }
  if (out.pending == 0) out.lag_seconds = 0;  // caught up
  return out;
}

result<std::vector<dead_letter>> projector::dead_letters() const {
  if (!state_) return make_error(errc::invalid_argument, "projector: not running");
  std::lock_guard lk(state_->db_mutex);
  return read_dead_letters(*state_->db);
}

namespace {

// Runs a dead-letter retry (or skip) on the worker that owns the aggregate, between batches.
result<std::size_t> post_retry(detail::projector_state* s, std::string_view type,
                               std::string_view id, bool skip) {
  if (s == nullptr) return make_error(errc::invalid_argument, "projector: not running");
  if (s->stopping)
    return make_error(errc::invalid_argument, "projector {} is stopped", s->proj.name());
  auto task = std::make_shared<std::promise<result<std::size_t>>>();
  auto done = task->get_future();
  auto& slot = *s->slots[s->workers->index_of(id)];
  bool posted =
      s->workers->post(id, [s, &slot, task, type = std::string(type), id = std::string(id), skip] {
        std::lock_guard dl(s->db_mutex);
        task->set_value(slot.apply->retry(*s->db, type, id, skip));
      });
  // Refused once stop() has begun: a task posted before it always runs.
  if (!posted) return make_error(errc::invalid_argument, "projector {} is stopped", s->proj.name());
  return done.get();
}

}  // namespace

result<std::size_t> projector::retry(std::string_view aggregate_type,
                                     std::string_view aggregate_id) {
  return post_retry(state_.get(), aggregate_type, aggregate_id, false);
}
result<std::size_t> projector::skip(std::string_view aggregate_type,
                                    std::string_view aggregate_id) {
  return post_retry(state_.get(), aggregate_type, aggregate_id, true);
}

}  // namespace jetsource
