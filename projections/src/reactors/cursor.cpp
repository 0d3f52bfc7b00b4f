// detail: an ordered reactor member's cursor, on the fetcher thread (ADR 0014, "Reading"): one
// AckPolicy None consumer over the reactor's filter, read with the projector's pull_fetcher and
// its consumer-sequence jump check. Each delivery is dropped when the member does not hold its
// partition or when it is at or below the partition's mark, and dispatched to its aggregate's
// worker otherwise. Ownership changes from the lease keeper are applied between deliveries; an
// acquired partition whose checkpoint is below what the cursor delivered rewinds it. Each
// partition's checkpoint is its ack_tracker's mark (nothing is acked).
#include "ack_tracker.hpp"
#include "consumer_admin.hpp"
#include "envelope_of.hpp"
#include "log.hpp"
#include "reactors/member_state.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <charconv>
#include <thread>

namespace jetsource::detail {

std::optional<std::uint32_t> subject_partition(std::string_view subject) {
  // <prefix>.<Type>.<p>.<id>: the second token from the end.
  auto last = subject.rfind('.');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  auto before = subject.rfind('.', last - 1);
  if (before == std::string_view::npos) return std::nullopt;
  std::uint32_t p = 0;
  auto [end, ec] = std::from_chars(subject.data() + before + 1, subject.data() + last, p);
  if (ec != std::errc{} || end != subject.data() + last) return std::nullopt;
  return p;
}

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Every member belongs to the fetcher thread.
class cursor_loop {
 public:
  explicit cursor_loop(reactor_member_state& s)
      : s_(s), parts_(s.partitions()), trackers_(s.partitions(), ack_tracker(0)) {}
  void run();

 private:
  struct partition {
    bool owned = false;
    bool releasing = false;
    std::uint64_t epoch = 0;
    std::uint64_t mark = 0;  // deliveries at or below it are dropped (handled before)
    std::uint64_t in_flight = 0;
    clock::time_point release_by{};
  };
  void apply_changes();
  bool open_cursor(std::uint64_t from);
  void take(pull_fetcher::delivery& d);
  void settle(bool publish);
  void settle_releases(bool final);
  bool any_owned() const {
    return std::any_of(parts_.begin(), parts_.end(), [](auto& p) { return p.owned; });
  }

  reactor_member_state& s_;
  std::vector<partition> parts_;
  std::vector<ack_tracker> trackers_;
  bool cursor_open_ = false;
  std::uint64_t delivered_ = 0;  // the cursor's last delivered stream sequence
  std::uint64_t last_consumer_sequence_ = 0;
  const std::string base_name_ = s_.consumer;  // the cursor's name; then <name>-2, -3, ...
  int generation_ = 1;
  clock::time_point last_publish_ = clock::now();
  clock::time_point last_heard_ = clock::now();  // a delivery, or the consumer checked
  void check_consumer();
};

void cursor_loop::run() {
  auto drain_deadline = clock::time_point::max();
  for (;;) {
    s_.check_refused();
    if (s_.owned->has_changes()) apply_changes();
    const bool stop = s_.stopping.load();
    const auto now = clock::now();
    if (stop && drain_deadline == clock::time_point::max()) {
      // Handlers already running finish; lines waiting for a retry are abandoned (their events
      // stay above the checkpoints, for the next owner).
      drain_deadline = now + s_.opts.drain_timeout;
      s_.abandon_waiting(std::nullopt);
    }
    if (stop && (s_.buffered.load() == 0 || now > drain_deadline)) {
      settle(true);
      return;
    }
    if (!cursor_open_) {
      settle(false);
      std::this_thread::sleep_for(milliseconds(5));
      continue;
    }
    if (!stop &&
        s_.buffered.load() + s_.pull->outstanding() + static_cast<std::uint64_t>(s_.opts.batch) <=
            s_.opts.max_buffered)
      s_.pull->request(s_.opts.batch, s_.opts.pull_expires);
    pull_fetcher::delivery d;
    auto got = s_.pull->next(d);
    if (got == pull_fetcher::outcome::closed) {
      settle(true);
      return;
    }
    if (got == pull_fetcher::outcome::message) {
      last_heard_ = clock::now();
      if (!stop) take(d);
    } else if (clock::now() - last_heard_ > std::chrono::seconds(2)) {
      check_consumer();
    }
    settle(false);
  }
}

// Quiet for a while: the cursor may be gone (the server deletes it after 5 x lease without
// pulls, e.g. after an outage). Then it is made again right after what was delivered.
void cursor_loop::check_consumer() {
  last_heard_ = clock::now();
  consumer_info_ptr holder;
  auto ci = consumer_info(*s_.conn, s_.opts.stream, s_.consumer, holder);
  if (ci || !ci.error().is(errc::not_found)) return;
  log()->warn("reactor {}: cursor {} is gone; making it again from sequence {}", s_.r.name(),
              s_.consumer, delivered_ + 1);
  open_cursor(delivered_ + 1);
}

// (Re)creates the cursor delivering from `from`; what the old one sent and the fetcher holds is
// dropped.
bool cursor_loop::open_cursor(std::uint64_t from) {
  consumer_spec spec;
  spec.name = s_.consumer;
  spec.filter = s_.r.subject_filter();
  spec.ack_policy = js_AckNone;
  spec.start = from;
  spec.inactive_threshold = 5 * s_.lease();
  spec.description = "jetsource reactor cursor";
  spec.owner = "reactor " + s_.r.name();
  // Its position lives in the leases' checkpoints, and a lost cursor is made again (below): on
  // an R3 stream an R1 in-memory cursor is made in one meta-group step, not a Raft group's
  // election, which kept a member re-acquiring partitions waiting for tens of seconds.
  spec.disposable = true;
  (void)delete_consumer(*s_.conn, s_.opts.stream, s_.consumer);
  if (auto made = create_consumer(*s_.conn, s_.opts.stream, spec); !made) {
    log()->error("reactor {}: {}", s_.r.name(), made.error());
    // nats-server places an R1 consumer on a random node of the stream's group, also on one
    // that just died: its creation times out, and the name stays assigned to that node until it
    // returns, so each retry under it timed out too. The next attempt takes a new name (the
    // server deletes an unused one after inactive_threshold).
    if (made.error().is(errc::timeout))
      s_.consumer = fmt::format("{}-{}", base_name_, ++generation_);
    return false;
  }
  // A new inbox too: what the old consumer still sends can no longer arrive (its stream
  // sequences would look like this cursor's progress).
  auto fresh = pull_fetcher::open(s_.nc, s_.opts.stream, s_.consumer, s_.r.name());
  if (!fresh) {
    log()->error("reactor {}: {}", s_.r.name(), fresh.error());
    cursor_open_ = false;
    return false;
  }
  s_.pull.emplace(std::move(*fresh));
  cursor_open_ = true;
  last_heard_ = clock::now();
  delivered_ = from - 1;
  last_consumer_sequence_ = 0;
  return true;
}

void cursor_loop::apply_changes() {
  std::optional<std::uint64_t> rewind;  // the lowest checkpoint acquired below delivered_
  std::vector<std::uint32_t> acquired;
  for (const auto& c : s_.owned->take_changes()) {
    auto& p = parts_[c.partition];
    switch (c.what) {
      case ownership::change::kind::acquired:
        p = partition{true, false, c.epoch, c.checkpoint, 0, {}};
        trackers_[c.partition].reset(c.checkpoint);
        acquired.push_back(c.partition);
        if (!cursor_open_ || c.checkpoint < delivered_)
          rewind = std::min(rewind.value_or(c.checkpoint), c.checkpoint);
        break;
      case ownership::change::kind::lost:
        if (p.epoch == c.epoch) p.owned = p.releasing = false;
        break;
      case ownership::change::kind::release:
        if (p.owned && p.epoch == c.epoch && !p.releasing) {
          p.releasing = true;
          p.release_by = clock::now() + s_.opts.drain_timeout;
          s_.abandon_waiting(c.partition);
        }
        break;
    }
  }
  if (!rewind) return;
  // The partitions held before keep their marks: their events up to delivered_ came already
  // (handled or in flight), so the rewound cursor's repeats of them are dropped.
  for (std::uint32_t q = 0; q < parts_.size(); ++q)
    if (parts_[q].owned && std::find(acquired.begin(), acquired.end(), q) == acquired.end())
      parts_[q].mark = std::max(parts_[q].mark, delivered_);
  log()->info("reactor {}: cursor from sequence {} ({} partitions acquired)", s_.r.name(),
              *rewind + 1, acquired.size());
  while (!open_cursor(*rewind + 1)) {
    if (s_.check_refused() || s_.stopping.load()) return;
    std::this_thread::sleep_for(milliseconds(500));
  }
}

void cursor_loop::take(pull_fetcher::delivery& d) {
  // The consumer numbers its deliveries: a jump means some were lost in transit (ADR 0009).
  // Everything up to delivered_ came: start over right after it.
  const auto cseq = d.meta.n.consumer_sequence;
  if (last_consumer_sequence_ > 0 && cseq > last_consumer_sequence_ + 1) {
    log()->warn("reactor {}: deliveries {}..{} of {} were lost in transit; reading again from {}",
                s_.r.name(), last_consumer_sequence_ + 1, cseq - 1, s_.consumer, delivered_ + 1);
    d.msg.reset();
    if (!open_cursor(delivered_ + 1)) std::this_thread::sleep_for(milliseconds(500));
    return;
  }
  last_consumer_sequence_ = std::max(last_consumer_sequence_, cseq);
  const auto sequence = d.meta.n.stream_sequence;
  if (sequence > delivered_)
    s_.position_time_ns.store(d.meta.n.timestamp, std::memory_order_relaxed);
  delivered_ = std::max(delivered_, sequence);
  s_.position.store(delivered_, std::memory_order_relaxed);
  s_.pending.store(d.meta.n.pending, std::memory_order_relaxed);
  const auto subject = std::string_view(natsMsg_GetSubject(d.msg.get()));
  const auto p = subject_partition(subject);
  if (!p || *p >= parts_.size()) return;  // not a commit subject: nothing to do
  auto& part = parts_[*p];
  if (!part.owned || part.releasing || sequence <= part.mark) return;
  trackers_[*p].delivered(sequence, d.meta);
  ++part.in_flight;
  s_.buffered.fetch_add(1);
  reactor_item item{envelope_of(std::move(d.msg), sequence), *p, part.epoch, true};
  const auto key = item.e.aggregate_id;  // a view into the message, which the item keeps
  s_.workers->dispatch(key, std::move(item));
}

// Reports from the workers move the trackers; every few ms each held partition's mark is
// published for the keeper's next renewal.
void cursor_loop::settle(bool final) {
  std::vector<item_report> reports;
  {
    std::lock_guard lk(s_.report_mutex);
    reports.swap(s_.reports);
  }
  for (const auto& r : reports) {
    s_.buffered.fetch_sub(1);
    auto& part = parts_[r.partition];
    if (part.epoch != r.epoch || !part.owned) continue;
    --part.in_flight;
    if (r.settled) trackers_[r.partition].committed(r.sequence);
  }
  const auto now = clock::now();
  if (!final && now - last_publish_ < milliseconds(5)) {
    if (!reports.empty()) settle_releases(false);
    return;
  }
  last_publish_ = now;
  for (std::uint32_t q = 0; q < parts_.size(); ++q) {
    auto& part = parts_[q];
    if (!part.owned) continue;
    // Deliveries of a partition being released are dropped: its mark must not pass them.
    if (!part.releasing && cursor_open_) trackers_[q].passed(delivered_);
    s_.owned->publish(q, part.epoch, trackers_[q].advance());
  }
  settle_releases(final);
}

// A partition being released is handed back once nothing of it is in flight (or at its drain
// deadline, or when the cursor ends): its checkpoint is the tracker's mark.
void cursor_loop::settle_releases(bool final) {
  const auto now = clock::now();
  for (std::uint32_t q = 0; q < parts_.size(); ++q) {
    auto& part = parts_[q];
    if (!part.owned || !part.releasing) continue;
    if (part.in_flight > 0 && now < part.release_by && !final) continue;
    s_.owned->settled(q, part.epoch, trackers_[q].advance());
    part.owned = part.releasing = false;
  }
  if (final)
    for (std::uint32_t q = 0; q < parts_.size(); ++q)
      if (parts_[q].owned) s_.owned->publish(q, parts_[q].epoch, trackers_[q].advance());
}

}  // namespace

void reactor_member_state::run_cursor() {
  cursor_loop(*this).run();
  after_cursor();
}

}  // namespace jetsource::detail
