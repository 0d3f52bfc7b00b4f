// The public reactor_member (jetsource/reactor.hpp): starts a member's parts in order (stream
// facts, the group's bucket and meta, the member key, the cursor's consumer, workers, the lease
// keeper and the cursor threads) and stops them in the order that hands its partitions over at
// once: the cursor settles, the workers drain, the keeper writes the last checkpoints with empty
// holders and removes the member key.
#include <jetsource/reactor.hpp>

#include "consumer_admin.hpp"
#include "log.hpp"
#include "patience.hpp"
#include "reactors/member_state.hpp"
#include "reactors/reactor_metrics.hpp"
#include "reactors/reactor_worker.hpp"
#include "thread_name.hpp"

#include <unistd.h>

#include <random>

namespace jetsource {

namespace detail {

reactor_member_state::reactor_member_state(connection c, reactor rx, reactor_options o)
    : conn_handle(std::move(c)), r(std::move(rx)), opts(std::move(o)) {}

reactor_member_state::~reactor_member_state() {
  stopping = true;
  if (fetcher.joinable()) fetcher.join();
  if (workers) workers->drain();
  keeper_stop = true;
  if (keeper.joinable()) keeper.join();
}

// The server quotes the refused subject: a pull ("$JS.API.CONSUMER.MSG.NEXT.<stream>.<c>"), an
// ack ("$JS.ACK.<stream>.<c>.…") or a request about the consumer ("….DURABLE.CREATE.<stream>.<c>").
bool reactor_member_state::check_refused() {
  if (failed.load()) return true;
  const auto count = conn->refused.count();
  if (count == refusals_seen) return false;
  refusals_seen = count;
  const auto named = fmt::format(".{}.{}", opts.stream, consumer);
  for (const auto& needle : {named + "\"", named + "."})
    if (auto why = conn->refused.about(needle, started_at)) {
      const char* what = why->find("MSG.NEXT") != std::string::npos   ? "pull from"
                         : why->find("$JS.ACK.") != std::string::npos ? "ack to"
                                                                      : "request about";
      fail(detail::permission_refused(
          fmt::format("reactor {}: {} consumer {}", r.name(), what, consumer), *why));
      return true;
    }
  return false;
}

void reactor_member_state::fail(error e) {
  {
    std::lock_guard lk(failure_mutex);
    if (failure) return;
    log()->error("{}; member {} stops and hands its partitions over", e, instance);
    failure = std::move(e);
    failed = true;
  }
  stopping = true;
}

void reactor_member_state::after_cursor() {
  fetcher_done.store(true);
  if (!failed.load()) return;
  workers->drain();  // stop() drains again: a no-op once the threads are joined
  keeper_stop = true;
}

namespace {

std::string random_hex() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

result<void> validate(const reactor& r, const reactor_options& o) {
  JETSOURCE_TRY(validate_reactor_name("reactor name", r.name()));
  if (!o.instance.empty()) {
    JETSOURCE_TRY(validate_reactor_name("instance name", o.instance));
  }
  if (o.stream.empty())
    return make_error(errc::invalid_argument, "reactor {}: reactor_options.stream is required",
                      r.name());
  if (o.lease < std::chrono::milliseconds(300) || o.workers < 1 || o.batch < 1 ||
      o.max_buffered < static_cast<std::size_t>(o.batch) || o.retry.attempts < 1 ||
      o.pull_expires < std::chrono::milliseconds(10))
    return make_error(errc::invalid_argument,
                      "reactor {}: options out of range (lease >= 300 ms, workers >= 1, batch >= "
                      "1, max_buffered >= batch, retry.attempts >= 1, pull_expires >= 10 ms)",
                      r.name());
  return success();
}

// The store the group's stream is, for re-reading parked aggregates.
result<event_store> store_for(const connection& conn, const std::string& stream,
                              const stream_facts& f) {
  store_options so;
  so.stream = stream;
  so.subject_prefix = f.subject.substr(0, f.subject.size() - 2);
  so.partitions = f.partitions;
  so.replicas = f.replicas;
  so.duplicate_window = std::chrono::seconds(f.duplicates_ns / 1'000'000'000);
  return event_store::open(conn, so);
}

}  // namespace

// Everything up to the threads; `s` is not running yet.
result<void> prepare(reactor_member_state& s, const connection& conn) {
  s.conn = state_of(conn);
  s.nc = s.conn->nc.get();
  s.pid = static_cast<long>(::getpid());
  s.host = host_name();
  s.incarnation = random_hex();
  if (s.instance.empty()) s.instance = "m-" + random_hex();
  JETSOURCE_TRY(facts, read_stream_facts(*s.conn, s.opts.stream));
  s.facts = facts;
  JETSOURCE_TRY(control, connection::connect(s.conn->options));
  s.control.emplace(std::move(control));
  JETSOURCE_TRY(bucket, group_bucket::open(state_of(*s.control), s.opts.stream, s.r.name(), true,
                                           facts.replicas));
  s.bucket.emplace(std::move(bucket));
  group_meta wanted;
  wanted.stream = s.opts.stream;
  wanted.stream_created = facts.created;
  wanted.partitions = facts.partitions;
  wanted.mode = s.queue_mode() ? "queue" : "ordered";
  wanted.filter = s.r.subject_filter();
  wanted.first_sequence = s.opts.start == start_position::head ? facts.last_sequence + 1 : 1;
  JETSOURCE_TRY(meta, join_meta(*s.bucket, wanted, s.r.name()));
  s.meta = meta;
  if (facts.replicas > 1)
    log()->warn(
        "reactor {}: stream {} is replicated: lease compare-and-set needs nats-server >= "
        "2.9.21 to be exclusive (ADR 0014)",
        s.r.name(), s.opts.stream);
  s.owned = std::make_unique<ownership>(meta.partitions, s.lease() - s.lease() / 6);
  // The previous incarnation's cursor of this instance name goes (even a paused old process
  // never shares a consumer with this one).
  std::string previous;
  if (auto old = s.bucket->get(member_key(s.instance)); old && *old)
    if (auto m = decode_member((*old)->value)) previous = m->incarnation;
  JETSOURCE_TRY(s.claim_member());
  if (s.queue_mode()) {
    JETSOURCE_TRY(prepare_queue(s));
  } else {
    s.consumer = fmt::format("jetsource-r-{}-{}-{}", s.r.name(), s.instance, s.incarnation);
    if (!previous.empty())
      (void)delete_consumer(*s.conn, s.opts.stream,
                            fmt::format("jetsource-r-{}-{}-{}", s.r.name(), s.instance, previous));
    auto store = store_for(conn, s.opts.stream, facts);
    if (!store) return std::move(store).error();
    s.store.emplace(std::move(*store));
  }
  JETSOURCE_TRY(pull, pull_fetcher::open(s.nc, s.opts.stream, s.consumer, s.r.name()));
  s.pull.emplace(std::move(pull));
  return success();
}

// Undoes what a failed prepare did (its member key above all: the group would count a member
// that never runs until its lease ran out), so that it can be tried again from the start.
void unprepare(reactor_member_state& s) {
  if (s.bucket && s.member_revision != 0) (void)s.bucket->remove(member_key(s.instance));
  s.member_revision = 0;
  s.pull.reset();
  s.store.reset();
  s.owned.reset();
  s.bucket.reset();
  s.control.reset();
}

}  // namespace detail

result<reactor_member> reactor_member::start(const connection& conn, reactor r, reactor_options o) {
  JETSOURCE_TRY(detail::validate(r, o));
  auto s = std::make_unique<detail::reactor_member_state>(conn, std::move(r), std::move(o));
  s->instance = s->opts.instance;
  auto prepared = detail::patiently("reactor " + s->r.name(), s->opts.start_patience, [&] {
    auto ok = detail::prepare(*s, conn);
    if (!ok) detail::unprepare(*s);
    return ok;
  });
  if (!prepared) return std::move(prepared).error();
  auto* st = s.get();
  for (int i = 0; i < st->opts.workers; ++i)
    st->lines.push_back(std::make_unique<detail::aggregate_lines>(*st));
  st->workers = std::make_unique<detail::keyed_workers<detail::reactor_item>>(
      static_cast<std::size_t>(st->opts.workers), 64,
      [st](std::size_t i, std::vector<detail::reactor_item>& batch) { st->run_batch(i, batch); },
      "js-react");
  if (st->opts.metrics != nullptr)
    st->metrics_watch = detail::watch_reactor(*st, *st->opts.metrics);
  st->keeper = std::thread([st] {
    detail::name_this_thread("js-react-keep");
    st->run_keeper();
  });
  st->fetcher = std::thread([st] {
    detail::name_this_thread("js-react-fetch");
    if (st->queue_mode())
      st->run_queue();
    else
      st->run_cursor();
  });
  detail::log()->info("reactor {}: member {} started on stream {} ({} mode, {} partitions)",
                      st->r.name(), st->instance, st->opts.stream, st->meta.mode,
                      st->meta.partitions);
  return reactor_member(std::move(s));
}

reactor_member::reactor_member(std::unique_ptr<detail::reactor_member_state> s) noexcept
    : s_(std::move(s)) {}
reactor_member::reactor_member(reactor_member&&) noexcept = default;
reactor_member& reactor_member::operator=(reactor_member&& other) noexcept {
  if (this != &other) {
    if (s_) (void)stop();
    s_ = std::move(other.s_);
  }
  return *this;
}
reactor_member::~reactor_member() {
  if (s_) (void)stop();
}

result<void> reactor_member::stop() {
  if (!s_) return success();
  auto& s = *s_;
  std::lock_guard lk(s.stop_mutex);
  if (s.stopped) return success();
  s.stopped = true;
  s.stopping = true;
  if (s.fetcher.joinable()) s.fetcher.join();
  s.workers->drain();
  s.keeper_stop = true;
  if (s.keeper.joinable()) s.keeper.join();
  if (!s.queue_mode()) (void)detail::delete_consumer(*s.conn, s.opts.stream, s.consumer);
  s.metrics_watch = {};
  detail::log()->info("reactor {}: member {} stopped", s.r.name(), s.instance);
  return success();
}

const std::string& reactor_member::instance() const noexcept {
  return s_->instance;
}

std::vector<std::uint32_t> reactor_member::partitions() const {
  return s_->owned->partitions();
}

std::optional<error> reactor_member::failure() const {
  std::lock_guard lk(s_->failure_mutex);
  return s_->failure;
}

reactor_status reactor_member::status() const {
  auto st = read_reactor_status(s_->conn_handle, s_->opts.stream, s_->r.name());
  if (st) return std::move(*st);
  reactor_status out;
  out.name = s_->r.name();
  out.stream = s_->opts.stream;
  out.mode = s_->meta.mode;
  return out;
}

}  // namespace jetsource
