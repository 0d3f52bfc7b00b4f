// detail: the projector's fetcher thread: keeps pulls going while there is room, hands each
// delivery to its aggregate's worker, advances the applied mark from what the workers commit,
// sends the cumulative ack; and the watcher thread, which looks at the consumer and the stream.
#include "ack_tracker.hpp"
#include "consumer_admin.hpp"
#include "envelope_of.hpp"
#include "log.hpp"
#include "projector_state.hpp"

#include <nats/nats.h>

#include <thread>

namespace jetsource::detail {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Deliveries taken before they are handed to the workers at once (fetch_loop::run).
constexpr std::size_t max_chunk = 128;
// At most this many deliveries at once are applied on the fetcher's thread (hand_over).
constexpr std::size_t apply_here_at_most = 16;

// The fetcher's own state; every member belongs to the fetcher thread.
class fetch_loop {
 public:
  explicit fetch_loop(projector_state& s) : s_(s), tracker_(s.mark.load()) {}
  void run();

 private:
  void sync_with_consumer();
  void take(pull_fetcher::delivery& d);
  void hand_over();
  void settle(bool final, clock::time_point now);
  bool start_over();
  void check_refused();
  void housekeeping(clock::time_point now, bool stop);
  bool drained() const { return s_.buffered.load() <= s_.held(); }

  projector_state& s_;
  pull_fetcher& pull_ = *s_.pull;
  ack_tracker tracker_;
  std::uint64_t last_consumer_sequence_ = 0;
  // Deliveries taken but not yet handed to their workers (one vector per worker), and how many.
  std::vector<std::vector<envelope>> chunks_{s_.workers->size()};
  std::size_t chunked_ = 0;
  std::vector<std::uint64_t> committed_;  // settle(): the workers' commits, capacity kept
  // Until the consumer's ack floor passes what it had delivered before we started, messages
  // from an earlier run may still come back: the mark follows the server's ack floor instead,
  // and nothing is acked.
  std::uint64_t synced_from_ = 0;
  clock::time_point last_ack_ = clock::now(), last_poll_ = clock::now(),
                    last_persist_ = clock::now(), rate_at_ = clock::now(),
                    last_requests_ = clock::now();
  std::uint64_t persisted_ = s_.mark.load(), rate_events_ = s_.events_applied.load();
  // Permission violations of this connection already looked at (check_refused).
  std::uint64_t refusals_seen_ = s_.conn->refused.count();
  const clock::time_point started_ = clock::now();
};

void fetch_loop::sync_with_consumer() {
  // AckPolicy None: the ack floor is what was delivered; the mark alone says what is applied.
  if (s_.acks == ack_mode::none) return;
  consumer_info_ptr holder;
  if (auto ci = s_.consumer_info(holder)) {
    s_.publish_mark((*ci)->AckFloor.Stream);
    if ((*ci)->NumAckPending > 0) synced_from_ = (*ci)->Delivered.Stream;
  }
}

void fetch_loop::run() {
  sync_with_consumer();
  auto drain_deadline = clock::time_point::max();
  for (;;) {
    const bool stop = s_.stopping.load() || s_.failed.load();
    const auto now = clock::now();
    // stop(): no new requests; the workers finish what they were given (all but messages held
    // for a gap), so the last commits are in the mark and acked before the fetcher ends. It does
    // not wait for its pull requests to expire: whatever the server still sends is not acked,
    // and the next start begins again from the file's mark (consumer_admin.hpp).
    if (stop && drain_deadline == clock::time_point::max())
      drain_deadline = std::min(now + s_.opts.drain_timeout, s_.stop_deadline.load());
    if (stop && (drained() || now > drain_deadline)) {
      settle(true, now);
      return;
    }
    if (!stop &&
        s_.buffered.load() + pull_.outstanding() + static_cast<std::uint64_t>(s_.opts.batch) <=
            s_.opts.max_buffered)
      pull_.request(s_.opts.batch, s_.opts.pull_expires);
    // While workers hold messages they have not committed, look again within a millisecond: the
    // mark readers wait for (read-your-writes) moves only here, after their commit. Waiting the
    // full 20 ms for a next message that an idle stream does not send held it back that long.
    const bool committing = s_.buffered.load() > s_.held();
    pull_fetcher::delivery d;
    auto got = pull_.next(d, committing ? milliseconds(1) : milliseconds(20));
    if (got == pull_fetcher::outcome::closed) return;
    if (!stop) check_refused();
    if (got == pull_fetcher::outcome::message) {
      take(d);
      // Whatever else has arrived already goes with it: one lock and one wake-up per worker for
      // the chunk, not for each message.
      while (chunked_ < max_chunk &&
             pull_.next(d, milliseconds(0)) == pull_fetcher::outcome::message)
        take(d);
    }
    hand_over();
    const auto after = clock::now();
    settle(false, after);
    housekeeping(after, stop);
  }
}

// The server drops a pull request or an ack this user may not publish, and answers neither:
// the fetcher would ask again forever. nats.c reports the violation only to the connection's
// error handler, which notes it (connection_state::refused); naming this consumer's pulls or acks,
// it fails the projection with a clear error (status and `serve` report it).
void fetch_loop::check_refused() {
  const auto count = s_.conn->refused.count();
  if (count == refusals_seen_) return;
  refusals_seen_ = count;
  const auto pulls =
      fmt::format("\"$JS.API.CONSUMER.MSG.NEXT.{}.{}\"", s_.opts.stream, s_.consumer);
  const auto acks = fmt::format("\"$JS.ACK.{}.{}.", s_.opts.stream, s_.consumer);
  for (const auto& [needle, what] : {std::pair{&pulls, "pull from"}, std::pair{&acks, "ack to"}})
    if (auto why = s_.conn->refused.about(*needle, started_)) {
      s_.fail(detail::permission_refused(fmt::format("{} consumer {}", what, s_.consumer), *why));
      return;
    }
}

// One delivery: to its aggregate's worker, unless deliveries were lost before it.
void fetch_loop::take(pull_fetcher::delivery& d) {
  // The consumer numbers every delivery (redeliveries too): a jump means deliveries were lost on
  // the way (a reconnect). The server would resend them only after AckWait (with AckPolicy None
  // never), and a cumulative ack would even acknowledge them: start the consumer over from the
  // mark. The last deliveries lost have no successor to show a jump: the watcher finds those.
  const auto cseq = d.meta.n.consumer_sequence;
  if (last_consumer_sequence_ > 0 && cseq > last_consumer_sequence_ + 1) {
    log()->warn(
        "projection {}: deliveries {}..{} of consumer {} were lost in transit; recreating it "
        "from sequence {}",
        s_.proj.name(), last_consumer_sequence_ + 1, cseq - 1, s_.consumer, s_.mark.load() + 1);
    d.msg.reset();
    hand_over();  // what came before the gap was delivered: it goes to the workers first
    if (!start_over()) std::this_thread::sleep_for(milliseconds(500));
    return;  // on failure, the next delivery finds the gap again
  }
  // Numbers come in order on the one connection, so a lower one means the consumer numbers
  // again from an older state: a new leader whose replicated state lags what the old one sent
  // (nats-server 2.9.10 proposes each delivery after sending it), or a server restarted on a
  // consumer file flushed before the last deliveries. What it sends again is skipped as
  // duplicates; gaps and the watcher's count go by the new numbers from here.
  last_consumer_sequence_ = cseq;
  s_.received.store(cseq, std::memory_order_relaxed);
  const auto sequence = d.meta.n.stream_sequence;
  tracker_.delivered(sequence, d.meta);  // before the worker may free the message
  if (s_.opts.on_fetched) s_.opts.on_fetched(sequence);
  envelope e = envelope_of(std::move(d.msg), sequence);
  const auto key = e.aggregate_id;  // a view into the message, which the envelope keeps
  chunks_[s_.workers->index_of(key)].push_back(std::move(e));
  ++chunked_;
}

// The deliveries taken since the last call, to their workers (counted as buffered first: a
// worker subtracts what it commits). With one worker, a few deliveries while it is idle (events
// trickling in) are applied here instead: each would cost the worker's wake-up and the
// fetcher's next look at what it committed, two thread switches, more than the apply itself on
// a machine where switching is dear (docs/performance.md, "Where the tail at half the peak
// comes from"). A full chunk (a backlog) goes to the worker, so fetching overlaps applying.
void fetch_loop::hand_over() {
  if (chunked_ == 0) return;
  s_.buffered.fetch_add(chunked_);
  const std::size_t n = chunked_;
  chunked_ = 0;
  if (chunks_.size() == 1 && n <= apply_here_at_most && s_.workers->run_here(0, chunks_[0])) return;
  for (std::size_t i = 0; i < chunks_.size(); ++i) s_.workers->dispatch_to(i, chunks_[i]);
}

// Committed sequences advance the mark. With AckPolicy All one ack covers the committed prefix;
// it goes out at most every few milliseconds (acks are for the server's bookkeeping: readers
// wait for the mark, not for acks), and at once when the fetcher stops.
void fetch_loop::settle(bool final, clock::time_point now) {
  {
    std::lock_guard lk(s_.done_mutex);
    committed_.swap(s_.done);
  }
  for (auto seq : committed_) tracker_.committed(seq);
  committed_.clear();
  const auto mark = tracker_.advance();
  if (synced_from_ != 0) return;
  if (s_.acks == ack_mode::cumulative && (final || now - last_ack_ >= milliseconds(5)))
    if (auto subject = tracker_.take_ack()) {
      ack(s_.nc, subject->c_str(), "+ACK");
      last_ack_ = now;
    }
  s_.publish_mark(mark);
}

// A new consumer from the mark: what the old one sent and is not committed comes again.
bool fetch_loop::start_over() {
  if (auto r = s_.recreate_consumer(s_.mark.load() + 1); !r) {
    log()->error("projection {}: {}", s_.proj.name(), r.error());
    return false;
  }
  pull_.reset();
  tracker_.consumer_recreated();
  last_consumer_sequence_ = 0;
  s_.consumer_generation.fetch_add(1);  // before `received` restarts: the watcher's pair
  s_.received.store(0);
  synced_from_ = 0;
  return true;
}

// The periodic work: the ack floor while syncing, dead-letter requests from other processes,
// a consumer the watcher found gone, the apply rate, the mark on disk.
void fetch_loop::housekeeping(clock::time_point now, bool stop) {
  if (synced_from_ > 0 && now - last_poll_ > milliseconds(200)) {
    last_poll_ = now;
    consumer_info_ptr holder;
    if (auto ci = s_.consumer_info(holder)) {
      s_.publish_mark((*ci)->AckFloor.Stream);
      if ((*ci)->AckFloor.Stream >= synced_from_) synced_from_ = 0;
    }
  }
  if (!stop && now - last_requests_ >= milliseconds(250)) {
    last_requests_ = now;
    s_.serve_repair_requests();
  }
  if (!stop && s_.consumer_gone.exchange(false)) {  // the watcher saw it
    log()->warn("projection {}: consumer {} is gone; recreating it from sequence {}",
                s_.proj.name(), s_.consumer, s_.mark.load() + 1);
    start_over();
  }
  if (!stop && s_.deliveries_lost.exchange(false)) start_over();  // the watcher logged why
  if (now - rate_at_ >= std::chrono::seconds(1)) {
    auto applied = s_.events_applied.load();
    s_.events_per_s = static_cast<double>(applied - rate_events_) /
                      std::chrono::duration<double>(now - rate_at_).count();
    rate_events_ = applied;
    rate_at_ = now;
  }
  if (s_.mark.load() > persisted_ && now - last_persist_ > milliseconds(100)) {
    last_persist_ = now;
    if (s_.persist_mark(s_.mark.load(), s_.events_per_s.load())) persisted_ = s_.mark.load();
  }
}

}  // namespace

void projector_state::run_fetcher() {
  fetch_loop(*this).run();
}

void projector_state::run_watcher() {
  watch w;
  std::unique_lock lk(watch_mutex);
  while (!watch_wake.wait_for(lk, std::chrono::seconds(1),
                              [&] { return stopping.load() || failed.load(); })) {
    lk.unlock();
    if (check_position(w) == position::consumer_gone) consumer_gone = true;
    lk.lock();
  }
}

projector_state::position projector_state::check_position(watch& w) {
  bool& stream_missing = w.stream_missing;
  // The mark first: the fetcher moves it on meanwhile, and a mark read after the stream's last
  // sequence could pass it (a false "the server lost messages"). Likewise what the fetcher
  // received, before the consumer says what it delivered.
  const auto applied = mark.load();
  const auto generation = consumer_generation.load();
  const auto got = received.load();
  auto now = identify_stream(*conn, opts.stream);
  if (!now) {
    if (!now.error().is(errc::not_found)) return position::fine;  // a reconnect: try again
    if (!stream_missing)
      log()->warn("projection {}: stream {} is gone; waiting for it", proj.name(), opts.stream);
    stream_missing = true;
    return position::fine;
  }
  stream_missing = false;
  stream_head = now->last_sequence;
  stream_clustered = now->clustered;
  if (auto ok = check_stream(proj, opts.stream, stream_created, applied, *now); !ok) {
    fail(std::move(ok).error());
    return position::failed;
  }
  consumer_info_ptr holder;
  auto ci = consumer_info(holder);
  if (!ci && ci.error().is(errc::not_found)) return position::consumer_gone;
  if (ci && acks == ack_mode::none) check_tail(**ci, generation, got, w);
  return position::fine;
}

void projector_state::check_tail(const jsConsumerInfo& ci, std::uint64_t generation,
                                 std::uint64_t got, watch& w) {
  // Delivered.Consumer numbers the consumer's last delivery (0 in the zeroed answer of a
  // consumer without a leader). While the fetcher still has deliveries to apply it may be busy
  // applying a few itself (hand_over) rather than reading: not a loss.
  const bool idle = buffered.load() <= held();
  const bool short_now = idle && ci.Delivered.Consumer > got;
  if (short_now && w.short_before && w.generation == generation && w.received == got) {
    log()->warn(
        "projection {}: consumer {} delivered up to {} but deliveries after {} never arrived "
        "(AckPolicy None does not send them again); recreating it from sequence {}",
        proj.name(), consumer, ci.Delivered.Consumer, got, mark.load() + 1);
    deliveries_lost = true;
    w.short_before = false;
    return;
  }
  w.short_before = short_now;
  w.generation = generation;
  w.received = got;
}

}  // namespace jetsource::detail
