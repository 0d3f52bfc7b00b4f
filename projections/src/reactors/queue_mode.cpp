// detail: a reactor member in queue mode (ADR 0014, "Queue mode"): the seeds' plain work queue.
// Every member pulls from one shared durable, `jetsource-r-<reactor>-queue`, AckExplicit with
// MaxAckPending = the buffer bound and AckWait = queue_ack_wait: any member takes any event, in
// no particular order, and a killed member's unacknowledged deliveries come back to the others
// after AckWait. A failing handler is retried in process after a backoff (retry_policy):
// between attempts the delivery waits as a delayed task of its worker (other deliveries flow), kept
// alive with +WPI every AckWait/2; after the last attempt a `dead.<sequence>` record is written,
// then the message is acked.
#include "consumer_admin.hpp"
#include "envelope_of.hpp"
#include "log.hpp"
#include "reactors/member_state.hpp"
#include "reactors/reactor_worker.hpp"

#include <algorithm>

namespace jetsource::detail {

// Acknowledges one delivery by publishing to its reply subject (apply_loop.cpp).
void ack(natsConnection* nc, const char* reply, std::string_view what);

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

result<void> ensure_queue_consumer(reactor_member_state& s) {
  consumer_info_ptr holder;
  auto ci = consumer_info(*s.conn, s.opts.stream, s.consumer, holder);
  if (ci) return success();
  if (!ci.error().is(errc::not_found)) return std::move(ci).error();
  consumer_spec spec;
  spec.name = s.consumer;
  spec.filter = s.r.subject_filter();
  spec.ack_policy = js_AckExplicit;
  spec.start = s.meta.first_sequence;
  spec.ack_wait = s.opts.queue_ack_wait;
  spec.max_ack_pending = static_cast<std::int64_t>(s.opts.max_buffered);
  spec.description = "jetsource reactor queue";
  spec.owner = "reactor " + s.r.name();
  auto made = create_consumer(*s.conn, s.opts.stream, spec);
  if (!made && made.error().message.find("already") != std::string::npos) return success();
  return made;
}

// Gives a delivery back to the server for another member (a stopping member). Delayed past this
// member's own pull requests, still open on the server for up to pull_expires: an immediate -NAK
// was delivered straight back to them, and dropped, until AckWait.
void hand_back(const reactor_member_state& s, const char* reply) {
  const auto delay =
      std::chrono::duration_cast<std::chrono::nanoseconds>(s.opts.pull_expires + milliseconds(200));
  ack(s.nc, reply, fmt::format("-NAK {{\"delay\": {}}}", delay.count()));
}

}  // namespace

void reactor_member_state::run_queue() {
  auto& pull = *this->pull;
  auto drain_deadline = clock::time_point::max();
  for (;;) {
    check_refused();
    const bool stop = stopping.load();
    const auto now = clock::now();
    if (stop && drain_deadline == clock::time_point::max()) {
      // Handlers already running finish; deliveries waiting for a retry go back to the server.
      drain_deadline = now + opts.drain_timeout;
      abandon_waiting(std::nullopt);
    }
    {
      std::lock_guard lk(report_mutex);
      buffered.fetch_sub(reports.size());
      reports.clear();
    }
    if (stop && (buffered.load() == 0 || now > drain_deadline)) break;
    if (!stop && buffered.load() + pull.outstanding() + static_cast<std::uint64_t>(opts.batch) <=
                     opts.max_buffered)
      pull.request(opts.batch, opts.pull_expires);
    pull_fetcher::delivery d;
    auto got = pull.next(d);
    if (got == pull_fetcher::outcome::closed) break;
    if (got != pull_fetcher::outcome::message) continue;
    if (stop) {
      hand_back(*this, natsMsg_GetReply(d.msg.get()));
      continue;
    }
    const auto sequence = d.meta.n.stream_sequence;
    if (sequence > position.load()) position_time_ns.store(d.meta.n.timestamp);
    position.store(std::max(position.load(), sequence), std::memory_order_relaxed);
    pending.store(d.meta.n.pending, std::memory_order_relaxed);
    buffered.fetch_add(1);
    reactor_item item{envelope_of(std::move(d.msg), sequence), 0, 0, true};
    const auto key = item.e.aggregate_id;
    workers->dispatch(key, std::move(item));
  }
  after_cursor();
}

result<void> prepare_queue(reactor_member_state& s) {
  s.consumer = fmt::format("jetsource-r-{}-queue", s.r.name());
  return ensure_queue_consumer(s);
}

void aggregate_lines::handle_queued(reactor_item& item) {
  const auto sequence = item.e.sequence;
  if (auto it = queued_.find(sequence); it != queued_.end()) {
    // Redelivered while waiting for its retry (a +WPI came too late): answer the newest copy.
    settle(it->second.item, false);
    it->second.item = std::move(item);
    return;
  }
  queued_delivery q{std::move(item), line{}, {}, clock::now()};
  if (attempt_queued(q)) return;
  queued_.emplace(sequence, std::move(q));
  schedule_queued(sequence);
}

bool aggregate_lines::attempt_queued(queued_delivery& q) {
  auto& l = q.l;  // no order, no dedup: a line of one commit
  auto& item = q.item;
  auto failed = run_events(l, item);
  if (failed) {
    if (l.first_failed_at.empty()) l.first_failed_at = utc_now();
    ++l.attempt;
    if (l.attempt < std::max(1, s_.opts.retry.attempts)) {
      s_.retries.fetch_add(1, std::memory_order_relaxed);
      q.due = clock::now() + backoff(l.attempt);
      return false;
    }
    park_value rec;
    rec.a.aggregate_type = item.e.aggregate_type;
    rec.a.aggregate_id = item.e.aggregate_id;
    rec.a.sequence = item.e.sequence;
    rec.a.version = failed->version;
    rec.a.event_type = failed->event_type;
    rec.a.error = fmt::format("{}", failed->why);
    rec.a.attempts = l.attempt;
    rec.a.first_failed_at = l.first_failed_at;
    rec.a.last_failed_at = utc_now();
    if (auto w = s_.bucket->put(fmt::format("dead.{}", item.e.sequence), encode(rec)); !w) {
      log()->error(
          "reactor {}: cannot write the dead record of sequence {}: {} (left to redelivery)",
          s_.r.name(), item.e.sequence, w.error());
      settle(item, false);
      return true;
    }
    s_.dead_count.fetch_add(1, std::memory_order_relaxed);
    log()->warn("reactor {}: gave up on sequence {} after {} attempts: {}", s_.r.name(),
                item.e.sequence, l.attempt, failed->why);
  }
  ack(s_.nc, item.e.reply, "+ACK");
  settle(item, true);
  return true;
}

void aggregate_lines::schedule_queued(std::uint64_t sequence) {
  auto& q = queued_.at(sequence);
  // Wake at the retry, or before AckWait/2 has passed since the last +WPI: the delivery stays
  // ours while it waits.
  const auto keep_alive = q.last_progress + s_.opts.queue_ack_wait / 2;
  const auto wake = std::min(q.due, keep_alive);
  const auto delay = std::chrono::ceil<milliseconds>(
      std::max<clock::duration>(wake - clock::now(), clock::duration::zero()));
  if (!s_.workers->post_after(q.item.e.aggregate_id, delay,
                              [this, sequence] { resume_queued(sequence); })) {
    settle(q.item, false);  // the member stops: the server redelivers it
    queued_.erase(sequence);
  }
}

void aggregate_lines::resume_queued(std::uint64_t sequence) {
  auto it = queued_.find(sequence);
  if (it == queued_.end()) return;  // abandoned meanwhile
  auto& q = it->second;
  if (s_.stopping.load()) {
    hand_back(s_, q.item.e.reply);  // to another member
    settle(q.item, false);
    queued_.erase(it);
    return;
  }
  const auto now = clock::now();
  if (now < q.due) {
    if (now - q.last_progress >= s_.opts.queue_ack_wait / 2) {
      ack(s_.nc, q.item.e.reply, "+WPI");
      q.last_progress = now;
    }
    schedule_queued(sequence);
    return;
  }
  if (attempt_queued(q)) {
    queued_.erase(it);
    return;
  }
  schedule_queued(sequence);
}

void aggregate_lines::abandon_queued() {
  for (auto& [sequence, q] : queued_) {
    hand_back(s_, q.item.e.reply);  // to another member
    settle(q.item, false);
  }
  queued_.clear();
}

}  // namespace jetsource::detail
