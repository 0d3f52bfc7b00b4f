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
#include <nlohmann/json.hpp>

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

// How long a cursor's delete and create wait for their answer. An R1 cursor is made in one
// meta-group step, in milliseconds; nats-server 2.9.10 places it on a random node of the
// stream's group, also on one that is down, and then only a timeout says so: each such attempt
// cost the connection's 5 s request timeout, and three in a row were seen after a node loss.
constexpr milliseconds cursor_request_timeout{2000};

// The stream leader's first message on `filter` after sequence `after` (its sequence; 0: none).
// $JS.API.STREAM.MSG.GET with next_by_subj is answered by the leader, unlike a direct get or a
// one-replica cursor, which read one node's copy.
result<std::uint64_t> leader_next_on(natsConnection* nc, const std::string& stream,
                                     const std::string& filter, std::uint64_t after) {
  const auto body = nlohmann::json{{"seq", after + 1}, {"next_by_subj", filter}}.dump();
  natsMsg* raw = nullptr;
  natsStatus s =
      natsConnection_Request(&raw, nc, ("$JS.API.STREAM.MSG.GET." + stream).c_str(), body.data(),
                             static_cast<int>(body.size()), cursor_request_timeout.count());
  msg_ptr reply(raw);
  if (s != NATS_OK) return nats_error(s, "read the next message of " + stream + " from its leader");
  const char* d = natsMsg_GetData(raw);
  auto j = nlohmann::json::parse(
      std::string_view(d ? d : "", static_cast<std::size_t>(natsMsg_GetDataLength(raw))), nullptr,
      false);
  if (j.is_discarded()) return make_error(errc::server_error, "a malformed answer from {}", stream);
  if (j.contains("error")) return std::uint64_t{0};  // 10037: no message after it
  return j.value("message", nlohmann::json::object()).value("seq", std::uint64_t{0});
}

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
  // A message the stream's leader had after delivered_ when the cursor was last checked: still
  // not delivered at the next check, the cursor reads a lagging copy.
  std::uint64_t undelivered_ = 0;
  int unanswered_ = 0;  // consumer-info checks in a row that got no answer
  void check_consumer();
  void remake_cursor(std::string_view why);
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
// pulls, e.g. after an outage). Then it is made again right after what was delivered. It may
// also be known by name and run nowhere (its info unanswered: assigned to a node that lost it),
// or deliver nothing while the stream's leader has more (an R1 cursor reads one node's copy,
// which may lag). In the stalls seen after node kills (cluster_reactor_group, 2 runs of ~10),
// a member's position stayed thousands of messages back with pending 0, its cursor ran on no
// node, and its partitions' events were handled by nobody, silently. Either case twice in a row
// (2 s apart): the cursor is made again under a new name, which nats-server places afresh.
void cursor_loop::check_consumer() {
  last_heard_ = clock::now();
  consumer_info_ptr holder;
  auto ci = consumer_info(*s_.conn, s_.opts.stream, s_.consumer, holder);
  if (!ci && ci.error().is(errc::not_found)) {
    log()->warn("reactor {}: cursor {} is gone; making it again from sequence {}", s_.r.name(),
                s_.consumer, delivered_ + 1);
    open_cursor(delivered_ + 1);
    return;
  }
  if (!ci) {
    // Its info unanswered twice in a row: nats-server knows the name but runs it nowhere (it
    // was assigned to a node that lost it). A member stayed silent for minutes on such a cursor,
    // its partitions handled by nobody.
    if (++unanswered_ >= 2) remake_cursor(fmt::format("its info is not answered: {}", ci.error()));
    return;
  }
  unanswered_ = 0;
  // Not asking for more (its handlers hold max_buffered): silence is no sign of a lagging copy.
  if (s_.buffered.load() + static_cast<std::uint64_t>(s_.opts.batch) > s_.opts.max_buffered) {
    undelivered_ = 0;
    return;
  }
  auto next = leader_next_on(s_.nc, s_.opts.stream, s_.r.subject_filter(), delivered_);
  if (!next || *next == 0 || *next <= delivered_) {
    undelivered_ = 0;
    return;
  }
  if (undelivered_ == 0 || undelivered_ <= delivered_) {
    undelivered_ = *next;  // seen once: the cursor may just be slow
    return;
  }
  remake_cursor(
      fmt::format("it delivers nothing past sequence {}, while the stream's leader has "
                  "sequence {} on its filter (it reads a copy that lags)",
                  delivered_, undelivered_));
}

// Under a new name, which nats-server places afresh, from right after what was delivered.
void cursor_loop::remake_cursor(std::string_view why) {
  log()->warn("reactor {}: cursor {}: {}; making it again from sequence {}", s_.r.name(),
              s_.consumer, why, delivered_ + 1);
  undelivered_ = 0;
  unanswered_ = 0;
  s_.consumer = fmt::format("{}-{}", base_name_, ++generation_);
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
  spec.request_timeout = cursor_request_timeout;
  (void)delete_consumer(*s_.conn, s_.opts.stream, s_.consumer, cursor_request_timeout);
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
