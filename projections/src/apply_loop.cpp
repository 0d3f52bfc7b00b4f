// detail: the projector's worker side: one group commit per batch with back-off on transient
// errors, what a commit announces (the mark's input, acks, counters), failing the projection,
// and the applied mark itself.
#include "consumer_admin.hpp"
#include "integrity.hpp"
#include "log.hpp"
#include "projector_state.hpp"

#include <nats/nats.h>

#include <random>
#include <thread>

namespace jetsource::detail {

void ack(natsConnection* nc, const char* reply, std::string_view what) {
  if (reply == nullptr || *reply == '\0') return;
  natsConnection_Publish(nc, reply, what.data(), static_cast<int>(what.size()));
}

void projector_state::apply_batch(std::size_t index, std::vector<envelope>& batch) {
  thread_local std::minstd_rand jitter(std::random_device{}());
  thread_local std::vector<std::uint64_t> committed;
  auto& w = *slots[index];
  // Failed, or stopping past the deadline: not applied, not acked (redelivered later).
  if (failed.load() || past_stop_deadline()) {
    buffered.fetch_sub(batch.size());
    return;
  }
  for (int attempt = 0;; ++attempt) {
    result<batch_outcome> r = [&] {
      std::lock_guard lk(db_mutex);
      return w.apply->apply(*db, batch, mark.load());
    }();
    if (r) {
      announce(*r, committed);
      w.held.store(w.apply->held());
      return;
    }
    // Nothing was committed and nothing acked.
    if (r.error().is(errc::corrupt)) {
      fail(rebuild_needed(file, r.error()));
      buffered.fetch_sub(batch.size());
      return;
    }
    if (past_stop_deadline()) {
      log()->error(
          "projection {}: giving up on {} messages at shutdown ({}); they will be redelivered",
          proj.name(), batch.size(), r.error());
      buffered.fetch_sub(batch.size());
      return;
    }
    // Back off and try the same batch again (not past the stop deadline).
    auto backoff = std::chrono::milliseconds(std::min(1000, 10 << std::min(attempt, 7)));
    (is_transient(r.error()) ? log()->warn("projection {}: {} (retrying in {} ms)", proj.name(),
                                           r.error(), backoff.count())
                             : log()->error("projection {}: {} (retrying in {} ms)", proj.name(),
                                            r.error(), backoff.count()));
    auto pause = std::chrono::duration_cast<clock::duration>(backoff / 2 +
                                                             backoff * (jitter() % 512) / 1024);
    std::this_thread::sleep_until(std::min(clock::now() + pause, stop_deadline.load()));
  }
}

// A group commit is done: the fetcher advances the mark from `done`; with AckPolicy Explicit
// each message is acked here, after the commit is announced (a reader waiting for the mark does
// not wait for one publish per message). With AckPolicy All the fetcher acks the mark.
void projector_state::announce(const batch_outcome& out, std::vector<std::uint64_t>& committed) {
  events_applied.fetch_add(out.events);
  duplicates.fetch_add(out.duplicates);
  committed.clear();
  for (const auto& e : out.done) committed.push_back(e.sequence);
  if (opts.on_committed) opts.on_committed(committed);
  {
    std::lock_guard lk(done_mutex);
    done.insert(done.end(), committed.begin(), committed.end());
  }
  if (acks == ack_mode::each)
    for (const auto& e : out.done) ack(nc, e.reply, "+ACK");
  buffered.fetch_sub(out.done.size() + out.dropped);
}

// The projection cannot go on (a damaged file, a stream created again): every worker stops
// applying and the fetcher asks for nothing more; the status and wait_for() report `e` (logged
// once). Nothing uncommitted is acked: the server delivers it again to whatever runs on a
// repaired file.
void projector_state::fail(error e) {
  {
    std::lock_guard lk(failure_mutex);
    if (failure) return;
    log()->error("projection {}: {}; it applies nothing more until it is repaired", proj.name(), e);
    // Other processes' status reads it (the file itself may be unreadable).
    (void)write_text(with_suffix(opts.database, ".failed"), to_string(e));
    failure = std::move(e);
    failed = true;
  }
  std::lock_guard lk(mark_mutex);
  mark_changed.notify_all();
}

std::size_t projector_state::held() const {
  std::size_t n = 0;
  for (const auto& s : slots) n += s->held.load();
  return n;
}

void projector_state::publish_mark(std::uint64_t m) {
  std::uint64_t old = mark.load();
  while (m > old && !mark.compare_exchange_weak(old, m)) {
  }
  if (m > old) {
    std::lock_guard lk(mark_mutex);
    mark_changed.notify_all();
  }
}

bool projector_state::persist_mark(std::uint64_t m, double rate) {
  // Never wait for a worker's transaction here (the fetcher calls this): the next group commit
  // records the mark anyway.
  std::unique_lock lk(db_mutex, std::try_to_lock);
  if (!lk.owns_lock()) return false;
  auto r = db->execute(
      "UPDATE projection_state SET applied_sequence = max(applied_sequence, ?1), "
      "events_per_s = ?2 WHERE projection = ?3",
      m, rate, proj.name());
  if (!r) log()->warn("projection {}: cannot record the applied mark: {}", proj.name(), r.error());
  return static_cast<bool>(r);
}

result<void> projector_state::recreate_consumer(std::uint64_t from) {
  JETSOURCE_TRY(delete_consumer(*conn, opts.stream, consumer));
  return create_consumer(*conn, opts.stream, consumer, proj, opts, acks, from);
}

result<jsConsumerInfo*> projector_state::consumer_info(consumer_info_ptr& holder) const {
  return detail::consumer_info(*conn, opts.stream, consumer, holder);
}

std::optional<std::uint64_t> projector_state::consumer_backlog() const {
  // AckPolicy None: nothing is pending acknowledgement. Delivered and not committed is what is
  // on its way (the consumer's last delivery number above the fetcher's, read before the
  // answer) and what the fetcher handed on uncommitted; a delivery that moves from one to the
  // other meanwhile may count twice, never not at all.
  const auto got = received.load();
  consumer_info_ptr holder;
  auto ci = consumer_info(holder);
  if (!ci) return std::nullopt;
  auto backlog = trusted_backlog(stream_clustered.load(), **ci);
  if (backlog && acks == ack_mode::none) {
    const auto delivered = (*ci)->Delivered.Consumer;
    *backlog += buffered.load() + (delivered > got ? delivered - got : 0);
  }
  return backlog;
}

}  // namespace jetsource::detail
