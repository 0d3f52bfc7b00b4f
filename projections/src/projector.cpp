// jetsource::projector: the fetcher (a hand-driven pull loop, see docs/adr/0006), keyed workers,
// group commit, ack after commit, the applied mark, and shutdown.
#include <jetsource/event_store.hpp>
#include <jetsource/migrations.hpp>
#include <jetsource/projector.hpp>

#include "applier.hpp"
#include "binding.hpp"
#include "files.hpp"
#include "log.hpp"
#include "nats/handles.hpp"
#include "switching.hpp"
#include "wire/ack_subject.hpp"
#include "wire/headers.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace jetsource {

sqlite::options projection_sqlite_options() {
  sqlite::options o;
  o.synchronous = sqlite::synchronous::normal;
  o.cache_size_kib = 64 * 1024;
  o.page_size = 1024;
  o.wal_autocheckpoint_pages = 40'000;
  o.background_checkpoint = true;
  return o;
}

namespace detail {

namespace {

using clock = std::chrono::steady_clock;

std::string_view header_view(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == nullptr) return {};
  return v;
}

// The headers a commit needs.
struct commit_headers {
  std::string_view type, id, version, events, msg_id;
};

// Reads them straight from the message's header block. nats.c 3.4.1 keeps a received message in
// one allocation, subject\0 reply\0 headers\0 data\0, and its natsMsgHeader_Get first copies
// every header into a hash table (a malloc per header: the fetcher's largest cost). Anything
// unexpected (another layout, folded lines) returns nullopt and natsMsgHeader_Get is used.
std::optional<commit_headers> read_commit_headers(natsMsg* m) {
  const char* reply = natsMsg_GetReply(m);
  const char* data = natsMsg_GetData(m);
  if (reply == nullptr || data == nullptr) return std::nullopt;
  const char* start = reply + std::strlen(reply) + 1;
  if (data < start + 14 || data - start > 65536 || data[-1] != '\0') return std::nullopt;
  std::string_view block(start, static_cast<std::size_t>(data - start - 1));
  if (!block.starts_with("NATS/1.0") || !block.ends_with("\r\n\r\n")) return std::nullopt;
  block.remove_prefix(block.find("\r\n") + 2);  // the status line
  commit_headers h;
  while (block.size() > 2) {
    auto eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || line.empty() || line.front() == ' ' ||
        line.front() == '\t')
      return std::nullopt;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    std::string_view* slot = key == hdr_aggregate_type ? &h.type
                             : key == hdr_aggregate_id ? &h.id
                             : key == hdr_version      ? &h.version
                             : key == hdr_events       ? &h.events
                             : key == hdr_msg_id       ? &h.msg_id
                                                       : nullptr;
    if (slot != nullptr && slot->empty()) *slot = value;  // the first value, as nats.c's Get
  }
  return h;
}

void ack(natsConnection* nc, const char* reply, std::string_view what) {
  if (reply == nullptr || *reply == '\0') return;
  // natsMsg_Ack cannot be used on a message of a plain subscription (it crashes); an ack is a
  // publish to the reply subject (ADR 0006).
  natsConnection_Publish(nc, reply, what.data(), static_cast<int>(what.size()));
}

struct worker {
  std::thread thread;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<envelope> queue;
  std::deque<std::function<void()>> controls;  // dead-letter retries, run between batches
  bool draining = false;                       // stop(): finish the queue, then exit
  std::unique_ptr<applier> apply;
  std::atomic<std::size_t> held{0};  // messages its applier holds back
};

}  // namespace

struct projector_state {
  projector_state(connection c, projection p) : conn_handle(std::move(c)), proj(std::move(p)) {}

  connection conn_handle;
  std::optional<file_lock> live_lock;
  std::filesystem::path file;  // the database file in use (see files.hpp)
  projection proj;
  projector_options opts;
  std::shared_ptr<connection_state> conn;
  natsConnection* nc = nullptr;
  std::string consumer;
  bool cumulative = false;   // the consumer's AckPolicy is All: the fetcher acks the mark only
  std::string next_subject;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
  std::string inbox;
  subscription_ptr sub;

  std::mutex db_mutex;  // one writer connection: transactions serialise here, not in SQLite
  std::optional<sqlite::database> db;
  std::vector<std::unique_ptr<worker>> workers;
  std::thread fetcher;
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::mutex stop_mutex;

  // Committed sequences, from the workers to the fetcher.
  std::mutex done_mutex;
  std::vector<std::uint64_t> done;
  std::atomic<std::uint64_t> buffered{0};  // fetched, not yet committed

  // The applied mark: every message at or below it is committed.
  std::atomic<std::uint64_t> mark{0};
  std::mutex mark_mutex;
  std::condition_variable mark_changed;

  std::atomic<std::uint64_t> events_applied{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<double> events_per_s{0};

  // Set by start(); read by the fetcher: the creation time of the stream the file was built from.
  std::int64_t stream_created = 0;
  bool stream_missing = false;  // the fetcher's: said once that the stream is gone
  // Why the projection stopped applying (the stream it was built from is gone, ...): set once by
  // any thread, read by status() and wait_for().
  mutable std::mutex failure_mutex;
  std::optional<error> failure;

  void fail(error e);
  std::optional<error> failed() const {
    std::lock_guard lk(failure_mutex);
    return failure;
  }

  worker& worker_for(std::string_view aggregate_id) {
    return *workers[fnv1a32(aggregate_id) % workers.size()];
  }
  void run_fetcher();
  void run_worker(worker& w);
  void publish_mark(std::uint64_t m);
  bool persist_mark(std::uint64_t m, double rate);
  result<jsConsumerInfo*> consumer_info(consumer_info_ptr& holder) const;
  result<void> recreate_consumer(std::uint64_t from);
  enum class position { fine, consumer_gone, failed };
  position check_position();
};

// Stops fetching for good: what was fetched is still applied, nothing new is asked for, and the
// status and wait_for() report `e` until the projector is stopped.
void projector_state::fail(error e) {
  {
    std::lock_guard lk(failure_mutex);
    if (failure) return;
    failure = e;
  }
  log()->error("{}", e);  // its message names the projection
  stopping = true;
  std::lock_guard lk(mark_mutex);
  mark_changed.notify_all();
}

// The fetcher's periodic look at what it reads from: the stream must still be the one the file
// was built from (fails the projection otherwise), and the consumer must still exist.
projector_state::position projector_state::check_position() {
  auto now = identify_stream(*conn, opts.stream);
  if (!now) {
    if (!now.error().is(errc::not_found)) return position::fine;  // a reconnect: try again
    if (!stream_missing)
      log()->warn("projection {}: stream {} is gone; waiting for it", proj.name(), opts.stream);
    stream_missing = true;
    return position::fine;
  }
  stream_missing = false;
  if (auto ok = check_stream(proj, opts.stream, stream_created, mark.load(), *now); !ok) {
    fail(std::move(ok).error());
    return position::failed;
  }
  consumer_info_ptr holder;
  auto ci = consumer_info(holder);
  if (!ci && ci.error().is(errc::not_found)) return position::consumer_gone;
  return position::fine;
}

// Creates the projection's durable consumer, delivering from stream sequence `from` (1: all).
result<void> create_consumer(jsCtx* js, const std::string& stream, const std::string& name,
                             const projection& p, const projector_options& o, bool cumulative,
                             std::uint64_t from) {
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = name.c_str();
  cfg.Description = "jetsource projection";
  cfg.AckPolicy = cumulative ? js_AckAll : js_AckExplicit;
  cfg.AckWait = std::chrono::nanoseconds(o.ack_wait).count();
  cfg.MaxDeliver = -1;  // MaxDeliver exhausted is a silent skip: the projector decides
  cfg.MaxAckPending = static_cast<int64_t>(o.max_buffered);
  cfg.FilterSubject = p.subject_filter().empty() ? nullptr : p.subject_filter().c_str();
  if (from > 1) {
    cfg.DeliverPolicy = js_DeliverByStartSequence;
    cfg.OptStartSeq = from;
  } else {
    cfg.DeliverPolicy = js_DeliverAll;
  }
  jsConsumerInfo* created = nullptr;
  jsErrCode code{};
  natsStatus a = js_AddConsumer(&created, js, stream.c_str(), &cfg, nullptr, &code);
  jsConsumerInfo_Destroy(created);
  if (a == NATS_OK) return success();
  if (code == JSStreamNotFoundErr)
    return make_error(errc::not_found, "projection {}: stream {} does not exist", p.name(), stream);
  return nats_error(a, "create consumer " + name, code);
}

result<void> projector_state::recreate_consumer(std::uint64_t from) {
  JETSOURCE_TRY(delete_consumer(*conn, opts.stream, consumer));
  return create_consumer(conn->js.get(), opts.stream, consumer, proj, opts, cumulative, from);
}

result<jsConsumerInfo*> projector_state::consumer_info(consumer_info_ptr& holder) const {
  jsConsumerInfo* ci = nullptr;
  jsErrCode code{};
  natsStatus s = js_GetConsumerInfo(&ci, conn->js.get(), opts.stream.c_str(), consumer.c_str(),
                                    nullptr, &code);
  if (s != NATS_OK) {
    if (code == JSConsumerNotFoundErr || s == NATS_NOT_FOUND)
      return make_error(errc::not_found, "consumer {} does not exist", consumer);
    return nats_error(s, "consumer info of " + consumer, code);
  }
  holder.reset(ci);
  return ci;
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

// The fetcher: keeps up to two pull requests outstanding while there is room, dispatches each
// message to its aggregate's worker, and keeps the applied mark from the committed sequences.
void projector_state::run_fetcher() {
  struct request {
    std::uint64_t id;
    std::uint64_t remaining;
    clock::time_point deadline;
  };
  std::deque<request> requests;
  std::uint64_t next_id = 1;
  std::uint64_t outstanding = 0;  // messages the server may still send us
  // Dispatched and not yet below the mark, by stream sequence. `stale`: delivered by a consumer
  // since recreated, so never named in an ack.
  struct delivery {
    ack_numbers n;
    bool committed = false, stale = false;
  };
  std::map<std::uint64_t, delivery> window;
  std::string ack_prefix, ack_suffix;  // of this consumer's ack subjects (cumulative acks)
  std::uint64_t last_consumer_sequence = 0;
  std::uint64_t last_delivered = mark.load();
  const auto grace = std::chrono::milliseconds(250);
  auto last_persist = clock::now();
  std::uint64_t persisted = mark.load(), rate_events = events_applied.load();
  auto rate_at = clock::now();

  // Until the consumer's ack floor passes what it had delivered before we started, messages
  // from an earlier run may still come back: the mark follows the server's ack floor instead.
  std::uint64_t synced_from = 0;
  {
    consumer_info_ptr holder;
    if (auto ci = consumer_info(holder)) {
      publish_mark((*ci)->AckFloor.Stream);
      if ((*ci)->NumAckPending > 0) synced_from = (*ci)->Delivered.Stream;
    }
  }
  auto last_poll = clock::now();

  auto drop_request = [&](std::uint64_t id) {
    for (auto it = requests.begin(); it != requests.end(); ++it)
      if (it->id == id) {
        outstanding -= it->remaining;
        requests.erase(it);
        return;
      }
  };

  // Committed sequences advance the mark. With AckPolicy All one ack covers the committed
  // prefix; it goes out at most every few milliseconds (acks are for the server's bookkeeping:
  // readers wait for the mark, not for acks), and at once when the fetcher stops.
  std::optional<std::pair<std::uint64_t, ack_numbers>> to_ack;
  auto last_ack = clock::now();
  auto settle = [&](bool final) {
    {
      std::vector<std::uint64_t> committed;
      {
        std::lock_guard lk(done_mutex);
        committed.swap(done);
      }
      for (auto seq : committed)
        if (auto it = window.find(seq); it != window.end()) it->second.committed = true;
    }
    while (!window.empty() && window.begin()->second.committed) {
      if (!window.begin()->second.stale)
        to_ack.emplace(window.begin()->first, window.begin()->second.n);
      window.erase(window.begin());
    }
    auto now = clock::now();
    if (cumulative && to_ack && synced_from == 0 && !ack_prefix.empty() &&
        (final || now - last_ack >= std::chrono::milliseconds(5))) {
      const auto& n = to_ack->second;
      auto subject = fmt::format("{}{}.{}.{}.{}.{}{}", ack_prefix, n.delivered, to_ack->first,
                                 n.consumer_sequence, n.timestamp, n.pending, ack_suffix);
      ack(nc, subject.c_str(), "+ACK");
      to_ack.reset();
      last_ack = now;
    }
    if (synced_from == 0) publish_mark(window.empty() ? last_delivered : window.begin()->first - 1);
  };
  // stop(): no new requests; the workers finish what they were given (all but messages held for
  // a gap), so the last commits are in the mark and acked before the fetcher ends.
  auto drained = [&] {
    std::size_t held_back = 0;
    for (const auto& w : workers) held_back += w->held.load();
    return buffered.load() <= held_back;
  };
  auto drain_deadline = clock::time_point::max();

  // A new consumer from the mark: what the old one sent and is not committed comes again.
  auto start_over = [&] {
    if (auto r = recreate_consumer(mark.load() + 1); !r) {
      log()->error("projection {}: {}", proj.name(), r.error());
      return false;
    }
    for (natsMsg* old = nullptr;
         natsSubscription_NextMsg(&old, sub.get(), 0) == NATS_OK && old != nullptr; old = nullptr)
      natsMsg_Destroy(old);
    for (auto& [seq, d] : window) d.stale = true;
    to_ack.reset();
    requests.clear();
    outstanding = 0;
    last_consumer_sequence = 0;
    synced_from = 0;
    ack_prefix.clear();
    return true;
  };
  auto last_check = clock::now();

  while (true) {
    bool stop = stopping.load();
    auto now = clock::now();
    // Expired requests the server never answered (2.9 sometimes drops them silently).
    while (!requests.empty() && requests.front().deadline < now) drop_request(requests.front().id);
    if (stop && drain_deadline == clock::time_point::max())
      drain_deadline = now + opts.drain_timeout;
    if (stop && requests.empty() && (drained() || now > drain_deadline)) {
      settle(true);
      break;
    }

    if (!stop && requests.size() < 2 &&
        buffered.load() + outstanding + opts.batch <= opts.max_buffered) {
      request r{next_id++, static_cast<std::uint64_t>(opts.batch), now + opts.pull_expires + grace};
      auto body = fmt::format(R"({{"batch":{},"expires":{}}})", opts.batch,
                              std::chrono::nanoseconds(opts.pull_expires).count());
      auto reply = fmt::format("{}.{}", inbox, r.id);
      if (natsConnection_PublishRequest(nc, next_subject.c_str(), reply.c_str(), body.data(),
                                        static_cast<int>(body.size())) == NATS_OK) {
        outstanding += r.remaining;
        requests.push_back(r);
      }
    }

    natsMsg* raw = nullptr;
    auto wait = std::chrono::milliseconds(requests.empty() ? 5 : 20);
    natsStatus s = natsSubscription_NextMsg(&raw, sub.get(), wait.count());
    if (s == NATS_OK && raw != nullptr) {
      msg_ptr m(raw);
      const char* reply = natsMsg_GetReply(raw);
      // Statuses (heartbeats, the end of a request) have no payload; commits always have one.
      std::string_view status =
          natsMsg_GetDataLength(raw) == 0 ? header_view(raw, "Status") : std::string_view{};
      if (!status.empty()) {
        // A status for one request: its reply subject is <inbox>.<id>.
        std::string_view subj = natsMsg_GetSubject(raw);
        std::uint64_t id = 0;
        auto dot = subj.rfind('.');
        std::from_chars(subj.data() + dot + 1, subj.data() + subj.size(), id);
        if (status == "100") continue;  // heartbeat
        if (status != "404" && status != "408" && status != "409")
          log()->warn("projection {}: pull status {} {}", proj.name(), status,
                      header_view(raw, "Description"));
        else if (status == "409")
          log()->debug("projection {}: pull status 409 {}", proj.name(),
                       header_view(raw, "Description"));
        drop_request(id);
        continue;
      }
      auto meta = reply ? parse_ack_subject(reply) : std::nullopt;
      if (!meta) continue;  // not a JetStream message
      if (!requests.empty()) {
        --outstanding;
        if (--requests.front().remaining == 0) requests.pop_front();
      }
      // The consumer numbers every delivery (redeliveries too): a jump means deliveries were
      // lost on the way (a reconnect). The server would resend them only after AckWait, and a
      // cumulative ack would even acknowledge them: start the consumer over from the mark.
      const auto cseq = meta->n.consumer_sequence;
      if (last_consumer_sequence > 0 && cseq > last_consumer_sequence + 1) {
        log()->warn(
            "projection {}: deliveries {}..{} of consumer {} were lost in transit; "
            "recreating it from sequence {}",
            proj.name(), last_consumer_sequence + 1, cseq - 1, consumer, mark.load() + 1);
        m.reset();
        if (!start_over()) std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;  // on failure, the next delivery finds the gap again
      }
      last_consumer_sequence = std::max(last_consumer_sequence, cseq);
      if (ack_prefix.empty()) {
        ack_prefix = meta->prefix;
        ack_suffix = meta->suffix;
      }
      envelope e;
      e.sequence = meta->n.stream_sequence;
      e.subject = natsMsg_GetSubject(raw);
      auto h = read_commit_headers(raw);
      if (!h)
        h = commit_headers{header_view(raw, hdr_aggregate_type), header_view(raw, hdr_aggregate_id),
                           header_view(raw, hdr_version), header_view(raw, hdr_events),
                           header_view(raw, hdr_msg_id)};
      e.event_types = h->events;
      e.msg_id = h->msg_id;
      e.body = {natsMsg_GetData(raw), static_cast<std::size_t>(natsMsg_GetDataLength(raw))};
      e.reply = reply;
      describe(e, h->type, h->id, h->version);
      e.owner = {m.release(), [](void* p) { natsMsg_Destroy(static_cast<natsMsg*>(p)); }};
      // A redelivery by a recreated consumer replaces the stale entry: acks name its numbers.
      if (auto [it, added] = window.try_emplace(e.sequence, delivery{meta->n});
          !added && it->second.stale)
        it->second = delivery{meta->n, it->second.committed};
      last_delivered = std::max(last_delivered, e.sequence);
      buffered.fetch_add(1);
      worker& w = worker_for(e.aggregate_id);
      {
        std::lock_guard lk(w.mutex);
        w.queue.push_back(std::move(e));
      }
      w.wake.notify_one();
    } else if (s != NATS_TIMEOUT && s != NATS_OK) {
      if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    settle(false);
    now = clock::now();
    if (synced_from > 0 && now - last_poll > std::chrono::milliseconds(200)) {
      last_poll = now;
      consumer_info_ptr holder;
      if (auto ci = consumer_info(holder)) {
        publish_mark((*ci)->AckFloor.Stream);
        if ((*ci)->AckFloor.Stream >= synced_from) synced_from = 0;
      }
    }

    if (!stop && now - last_check >= std::chrono::seconds(1)) {
      last_check = now;
      if (check_position() == position::consumer_gone) {
        log()->warn("projection {}: consumer {} is gone; recreating it from sequence {}",
                    proj.name(), consumer, mark.load() + 1);
        start_over();
      }
    }
    if (now - rate_at >= std::chrono::seconds(1)) {
      auto applied = events_applied.load();
      events_per_s = static_cast<double>(applied - rate_events) /
                     std::chrono::duration<double>(now - rate_at).count();
      rate_events = applied;
      rate_at = now;
    }
    if (mark.load() > persisted && now - last_persist > std::chrono::milliseconds(100)) {
      last_persist = now;
      if (persist_mark(mark.load(), events_per_s.load())) persisted = mark.load();
    }
  }
}

void projector_state::run_worker(worker& w) {
  std::vector<envelope> batch;
  std::vector<std::uint64_t> committed;
  std::minstd_rand jitter(std::random_device{}());
  for (;;) {
    std::deque<std::function<void()>> controls;
    {
      std::unique_lock lk(w.mutex);
      w.wake.wait(lk, [&] { return !w.queue.empty() || !w.controls.empty() || w.draining; });
      controls.swap(w.controls);
      std::size_t n = std::min(w.queue.size(), opts.max_group);
      batch.clear();
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(w.queue.front()));
        w.queue.pop_front();
      }
      if (batch.empty() && controls.empty() && w.draining) return;
    }
    for (auto& c : controls) c();
    if (batch.empty()) continue;

    auto deadline = clock::time_point::max();
    for (int attempt = 0;; ++attempt) {
      result<batch_outcome> r = [&] {
        std::lock_guard lk(db_mutex);
        return w.apply->apply(*db, batch, mark.load());
      }();
      if (r) {
        events_applied.fetch_add(r->events);
        duplicates.fetch_add(r->duplicates);
        committed.clear();
        for (const auto& e : r->done) committed.push_back(e.sequence);
        if (opts.on_committed) opts.on_committed(committed);
        {
          std::lock_guard lk(done_mutex);
          done.insert(done.end(), committed.begin(), committed.end());
        }
        // Acks go out after the commit is announced: a reader waiting for the mark does not
        // wait for one publish per message. With AckPolicy All the fetcher acks the mark.
        if (!cumulative)
          for (const auto& e : r->done) ack(nc, e.reply, "+ACK");
        buffered.fetch_sub(r->done.size() + r->dropped);
        w.held.store(w.apply->held());
        break;
      }
      // Nothing was committed and nothing acked: back off and try the same batch again.
      if (stopping.load() && deadline == clock::time_point::max())
        deadline = clock::now() + opts.drain_timeout;
      if (clock::now() > deadline) {
        log()->error(
            "projection {}: giving up on {} messages at shutdown ({}); they will be "
            "redelivered",
            proj.name(), batch.size(), r.error());
        buffered.fetch_sub(batch.size());
        break;
      }
      auto backoff = std::chrono::milliseconds(std::min(1000, 10 << std::min(attempt, 7)));
      (is_transient(r.error()) ? log()->warn("projection {}: {} (retrying in {} ms)", proj.name(),
                                             r.error(), backoff.count())
                               : log()->error("projection {}: {} (retrying in {} ms)", proj.name(),
                                              r.error(), backoff.count()));
      std::this_thread::sleep_for(backoff / 2 + backoff * (jitter() % 512) / 1024);
    }
  }
}

// Opens the database, applies jetsource's and the projection's migrations, and makes sure its
// projection_state row exists. Returns the row's version (the one the database was built with).
result<int> prepare_database(sqlite::database& db, const projection& p, std::string_view stream,
                             std::string_view consumer) {
  JETSOURCE_TRY(own, migrations::embedded("jetsource"));
  JETSOURCE_TRY(migrations::apply(db, own, "jetsource"));
  auto list = migrations::embedded(p.migrations_database());
  if (!list) {
    if (!list.error().is(errc::not_found)) return std::move(list).error();
  } else {
    auto applied = migrations::apply(db, *list, p.migrations_database());
    if (!applied)
      return make_error(applied.error().code, "projection {}: {}", p.name(),
                        applied.error().message);
  }
  JETSOURCE_TRY(
      db.execute("INSERT INTO projection_state (projection, version, stream, consumer, "
                 "updated_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                 "ON CONFLICT (projection) DO NOTHING",
                 p.name(), p.version(), stream, consumer, utc_now()));
  JETSOURCE_TRY(
      row, db.query_one("SELECT version FROM projection_state WHERE projection = ?1", p.name()));
  return row->get<int>(0);
}

result<std::string> live_consumer(const projection& p, const projector_options& o) {
  JETSOURCE_TRY(name, copy_consumer(p, o, true));
  return std::move(*name);
}

result<std::string> rebuild_consumer(const projection& p, const projector_options& o) {
  JETSOURCE_TRY(live, live_consumer(p, o));
  return live + "-rebuild";
}

// Binds to this copy's consumer when it delivers exactly what follows the file's mark, and
// (re)creates it from the mark otherwise: the database's own mark is the truth (issue 10).
result<void> bind_consumer(projector_state& s, const projection& p, const projector_options& o,
                           std::uint64_t applied) {
  jsCtx* js = s.conn->js.get();
  jsConsumerInfo* raw = nullptr;
  jsErrCode code{};
  natsStatus st =
      js_GetConsumerInfo(&raw, js, o.stream.c_str(), s.consumer.c_str(), nullptr, &code);
  consumer_info_ptr ci(raw);
  bool create = st == NATS_NOT_FOUND || code == JSConsumerNotFoundErr;
  if (st != NATS_OK && !create) return nats_error(st, "consumer info of " + s.consumer, code);
  s.cumulative = o.cumulative_acks;
  if (!create) {
    std::string_view filter = ci->Config->FilterSubject ? ci->Config->FilterSubject : "";
    if (filter != p.subject_filter())
      return make_error(errc::stream_config_mismatch,
                        "consumer {} follows '{}' but projection {} follows '{}': delete the "
                        "consumer (the projection resumes from its database)",
                        s.consumer, filter, p.name(), p.subject_filter());
    // The consumer says how it is acked (the rebuild's consumer, adopted by a live projector,
    // keeps its cumulative acks).
    s.cumulative = ci->Config->AckPolicy == js_AckAll;
    if (!consumer_follows(*ci, applied)) {
      log()->info(
          "projection {}: consumer {} does not continue from the database's mark {} (ack floor "
          "{}, start {}): recreating it from sequence {}",
          p.name(), s.consumer, applied, ci->AckFloor.Stream, ci->Config->OptStartSeq, applied + 1);
      create = true;
    } else if (s.cumulative && ci->NumAckPending > 0) {
      // Deliveries of an earlier run may come back, and one ack would cover them with what
      // this run commits: start over from the database's mark instead (dedup skips repeats).
      create = true;
    }
    if (create) {
      JETSOURCE_TRY(delete_consumer(*s.conn, o.stream, s.consumer));
    }
  }
  if (!create) return success();
  return create_consumer(js, o.stream, s.consumer, p, o, s.cumulative, applied + 1);
}

result<void> delete_consumer(connection_state& c, const std::string& stream,
                             const std::string& consumer) {
  jsErrCode code{};
  natsStatus s = js_DeleteConsumer(c.js.get(), stream.c_str(), consumer.c_str(), nullptr, &code);
  if (s == NATS_OK || s == NATS_NOT_FOUND || code == JSConsumerNotFoundErr) return success();
  return nats_error(s, "delete consumer " + consumer, code);
}

result<void> adopt_file(connection_state& c, const projection& p, const projector_options& o,
                        const std::filesystem::path& file) {
  auto old = current_file(o.database);
  JETSOURCE_TRY(point_to(o.database, file));
  std::error_code ec;
  std::filesystem::remove(with_suffix(o.database, ".ready"), ec);
  if (auto building = read_marker(with_suffix(o.database, ".rebuilding"));
      building && *building == file)
    std::filesystem::remove(with_suffix(o.database, ".rebuilding"), ec);
  JETSOURCE_TRY(rebuilder, rebuild_consumer(p, o));
  JETSOURCE_TRY(delete_consumer(c, o.stream, rebuilder));
  // The live consumer's position belongs to the old file: the next start creates it again from
  // the rebuilt file's applied mark (dedup skips what the file already has).
  JETSOURCE_TRY(live, live_consumer(p, o));
  JETSOURCE_TRY(delete_consumer(c, o.stream, live));
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

}  // namespace detail

namespace {

result<void> validate_projection_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
      }))
    return make_error(errc::invalid_argument,
                      "projection name '{}': use 1-64 letters, digits, '_' or '-'", name);
  return success();
}

}  // namespace

result<projector> projector::start(const connection& conn, projection p, projector_options o) {
  JETSOURCE_TRY(validate_projection_name(p.name()));
  if (o.stream.empty()) return make_error(errc::invalid_argument, "projector: no stream given");
  if (o.database.empty())
    return make_error(errc::invalid_argument, "projector: no database file given");
  if (o.workers < 1 || o.batch < 1 || o.max_group < 1 ||
      o.max_buffered < static_cast<std::size_t>(o.batch))
    return make_error(errc::invalid_argument,
                      "projector: workers, batch and max_group must be >= 1, max_buffered >= "
                      "batch");
  auto s = std::make_unique<detail::projector_state>(conn, p);
  s->conn = detail::state_of(conn);
  s->nc = s->conn->nc.get();
  if (!o.database.parent_path().empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.database.parent_path(), ec);
    if (ec)
      return make_error(errc::io, "cannot create {}: {}", o.database.parent_path().string(),
                        ec.message());
  }
  // One live projector per database, in any process.
  auto lock = detail::file_lock::try_acquire(detail::with_suffix(o.database, ".lock"));
  if (!lock) {
    if (lock.error().is(errc::busy))
      return make_error(errc::busy, "projection {} already runs on {} in another process", p.name(),
                        o.database.string());
    return std::move(lock).error();
  }
  s->live_lock.emplace(std::move(lock).value());
  JETSOURCE_TRY(consumer, detail::live_consumer(p, o));
  s->consumer = std::move(consumer);
  s->next_subject = fmt::format("$JS.API.CONSUMER.MSG.NEXT.{}.{}", o.stream, s->consumer);
  // A rebuild that finished while no projector ran: adopt it now.
  if (auto ready = detail::read_marker(detail::with_suffix(o.database, ".ready"))) {
    JETSOURCE_TRY(detail::adopt_file(*s->conn, p, o, *ready));
  }
  s->file = detail::current_file(o.database);
  JETSOURCE_TRY(db, sqlite::database::open(s->file.string(), o.sqlite));
  JETSOURCE_TRY(built_with, detail::prepare_database(db, p, o.stream, s->consumer));
  if (built_with != p.version())
    return make_error(errc::invalid_argument,
                      "projection {}: its database {} was built with version {}, the projection "
                      "is version {}: rebuild it",
                      p.name(), s->file.string(), built_with, p.version());
  JETSOURCE_TRY(state_row,
                db.query_one("SELECT applied_sequence, max_sequence, events_applied, "
                             "stream_created FROM projection_state WHERE projection = ?1",
                             p.name()));
  auto applied_sequence = state_row->get<std::uint64_t>(0);
  auto max_sequence = state_row->get<std::uint64_t>(1);
  s->events_applied = state_row->get<std::uint64_t>(2);
  s->stream_created = state_row->get<std::int64_t>(3);

  // The file continues the stream it was built from, or nothing is applied to it.
  auto here = detail::identify_stream(*s->conn, o.stream);
  if (!here)
    return make_error(here.error().code, "projection {}: {}", p.name(), here.error().message);
  JETSOURCE_TRY(detail::check_stream(p, o.stream, s->stream_created, max_sequence, *here));
  if (s->stream_created == 0) {
    s->stream_created = here->created;
    JETSOURCE_TRY(db.execute(
        "UPDATE projection_state SET stream_created = ?1, consumer = ?2 WHERE projection = ?3",
        here->created, s->consumer, p.name()));
  }

  JETSOURCE_TRY(detail::bind_consumer(*s, p, o, applied_sequence));
  s->mark = applied_sequence;

  s->db.emplace(std::move(db));
  s->opts = std::move(o);
  for (int i = 0; i < s->opts.workers; ++i) {
    auto w = std::make_unique<detail::worker>();
    w->apply = std::make_unique<detail::applier>(s->proj);
    auto index = static_cast<std::size_t>(i), count = static_cast<std::size_t>(s->opts.workers);
    JETSOURCE_TRY(w->apply->load_parked(
        *s->db, [&](std::string_view id) { return fnv1a32(id) % count == index; }));
    s->workers.push_back(std::move(w));
  }

  natsInbox* inbox = nullptr;
  if (natsStatus st = natsInbox_Create(&inbox); st != NATS_OK)
    return detail::nats_error(st, "create inbox");
  s->inbox = inbox;
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsStatus st = natsConnection_SubscribeSync(&sub, s->nc, (s->inbox + ".*").c_str());
      st != NATS_OK)
    return detail::nats_error(st, "subscribe to pull replies");
  s->sub.reset(sub);
  natsSubscription_SetPendingLimits(sub, -1, -1);

  auto* st = s.get();
  for (auto& w : s->workers) w->thread = std::thread([st, w = w.get()] { st->run_worker(*w); });
  s->fetcher = std::thread([st] { st->run_fetcher(); });
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
  return state_ ? state_->failed() : std::nullopt;
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

std::filesystem::path current_file(const std::filesystem::path& database) {
  return detail::current_file(database);
}

result<sqlite::database> open_read_model(const std::filesystem::path& database) {
  sqlite::options o;
  o.read_only = true;
  o.create = false;
  auto file = detail::current_file(database);
  if (!std::filesystem::exists(file))
    return make_error(errc::not_found, "no read model at {}", file.string());
  return sqlite::database::open(file.string(), o);
}

result<int> built_version(const std::filesystem::path& database, std::string_view projection_name) {
  JETSOURCE_TRY(db, open_read_model(database));
  auto row =
      db.query_one("SELECT version FROM projection_state WHERE projection = ?1", projection_name);
  if (!row) return make_error(errc::not_found, "{}: {}", database.string(), row.error().message);
  if (!*row)
    return make_error(errc::not_found, "no projection '{}' in {}", projection_name,
                      database.string());
  return (*row)->get<int>(0);
}

result<void> projector::stop() {
  if (!state_) return success();
  auto& s = *state_;
  std::lock_guard lk(s.stop_mutex);
  if (s.stopped) return success();
  s.stopped = true;
  s.stopping = true;
  if (s.fetcher.joinable()) s.fetcher.join();  // ends when its requests are answered or expired
  for (auto& w : s.workers) {
    {
      std::lock_guard wl(w->mutex);
      w->draining = true;
    }
    w->wake.notify_all();
  }
  for (auto& w : s.workers)
    if (w->thread.joinable()) w->thread.join();
  // Held messages wait for an earlier one: let the server send them again at once.
  for (auto& w : s.workers)
    w->apply->release_held([&](const detail::envelope& e) { detail::ack(s.nc, e.reply, "-NAK"); });
  s.sub.reset();                            // unsubscribes (the durable consumer stays)
  natsConnection_FlushTimeout(s.nc, 2000);  // the last acks
  (void)s.persist_mark(s.mark.load(), 0);
  {
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
  for (;;) {
    if (s.mark.load() >= sequence) return success();
    if (auto f = s.failed()) return *f;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return make_error(errc::timeout,
                        "projection {}: sequence {} not applied within {} ms "
                        "(applied up to {})",
                        s.proj.name(), sequence, timeout.count(), s.mark.load());
    // A sequence the consumer's filter does not match is never delivered: it counts as applied
    // once the consumer has nothing pending or unacknowledged beyond the stream's last sequence.
    if (now >= next_probe) {
      next_probe = now + std::chrono::milliseconds(50);
      jsStreamInfo* si = nullptr;
      jsErrCode code{};
      if (js_GetStreamInfo(&si, s.conn->js.get(), s.opts.stream.c_str(), nullptr, &code) ==
          NATS_OK) {
        detail::stream_info_ptr holder(si);
        std::uint64_t last = si->State.LastSeq;
        detail::consumer_info_ptr ch;
        if (auto ci = s.consumer_info(ch);
            ci && last >= sequence && (*ci)->NumPending == 0 && (*ci)->NumAckPending == 0)
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
  out.state = s.stopping ? "stopped" : "live";
  if (auto f = s.failed()) {
    out.state = "failed";
    out.error = f->message;
  }
  out.last_applied_seq = std::max(out.last_applied_seq, s.mark.load());
  out.events_per_s = s.events_per_s.load();
  out.database = s.file.string();
  for (const auto& w : s.workers) out.held += w->held.load();
  detail::describe_rebuild(out, s.opts.database, s.proj.name());
  out.duplicates = s.duplicates.load();
  detail::consumer_info_ptr holder;
  if (auto ci = s.consumer_info(holder))
    out.pending = (*ci)->NumPending + static_cast<std::uint64_t>((*ci)->NumAckPending);
  return out;
}

result<std::vector<dead_letter>> projector::dead_letters() const {
  if (!state_) return make_error(errc::invalid_argument, "projector: not running");
  std::lock_guard lk(state_->db_mutex);
  return read_dead_letters(*state_->db);
}

namespace {
result<std::size_t> post_retry(detail::projector_state& s, std::string_view type,
                               std::string_view id, bool skip) {
  if (s.stopping)
    return make_error(errc::invalid_argument, "projector {} is stopped", s.proj.name());
  auto& w = s.worker_for(id);
  auto task = std::make_shared<std::promise<result<std::size_t>>>();
  auto done = task->get_future();
  {
    std::lock_guard lk(w.mutex);
    w.controls.push_back([&s, &w, task, type = std::string(type), id = std::string(id), skip] {
      std::lock_guard dl(s.db_mutex);
      task->set_value(w.apply->retry(*s.db, type, id, skip));
    });
  }
  w.wake.notify_one();
  return done.get();
}
}  // namespace

result<std::size_t> projector::retry(std::string_view aggregate_type,
                                     std::string_view aggregate_id) {
  return post_retry(*state_, aggregate_type, aggregate_id, false);
}
result<std::size_t> projector::skip(std::string_view aggregate_type,
                                    std::string_view aggregate_id) {
  return post_retry(*state_, aggregate_type, aggregate_id, true);
}

result<std::vector<dead_letter>> read_dead_letters(sqlite::database& db) {
  JETSOURCE_TRY(rows, db.query("SELECT sequence, aggregate_type, aggregate_id, first_version, "
                               "last_version, kind, event_type, error, subject, attempts, "
                               "first_failed_at, last_failed_at FROM dead_letters "
                               "ORDER BY sequence"));
  std::vector<dead_letter> out;
  out.reserve(rows.size());
  for (const auto& r : rows)
    out.push_back({r.get<std::uint64_t>(0), r.get<std::string>(1), r.get<std::string>(2),
                   r.get<std::uint64_t>(3), r.get<std::uint64_t>(4), r.get<std::string>(5),
                   r.get<std::string>(6), r.get<std::string>(7), r.get<std::string>(8),
                   r.get<int>(9), r.get<std::string>(10), r.get<std::string>(11)});
  return out;
}

result<projection_status> read_status(sqlite::database& db, std::string_view projection_name) {
  JETSOURCE_TRY(row, db.query_one("SELECT version, consumer, status, applied_sequence, "
                                  "max_sequence, events_applied, events_per_s, "
                                  "(SELECT count(*) FROM dead_letters) "
                                  "FROM projection_state WHERE projection = ?1",
                                  projection_name));
  if (!row)
    return make_error(errc::not_found, "no projection '{}' in {}", projection_name, db.path());
  projection_status s;
  s.name = std::string(projection_name);
  s.version = s.database_version = row->get<int>(0);
  s.consumer = row->get<std::string>(1);
  s.state = row->get<std::string>(2);
  s.last_applied_seq = row->get<std::uint64_t>(3);
  s.max_applied_seq = row->get<std::uint64_t>(4);
  s.events_applied = row->get<std::uint64_t>(5);
  s.events_per_s = row->get<double>(6);
  s.dead_letters = row->get<std::uint64_t>(7);
  s.database = db.path();
  return s;
}

namespace {

// The creation time of the stream the file at `db` was built from (0: not recorded).
std::int64_t recorded_stream(sqlite::database& db, std::string_view projection_name) {
  auto row = db.query_one("SELECT stream_created FROM projection_state WHERE projection = ?1",
                          projection_name);
  return row && *row ? (**row).get<std::int64_t>(0) : 0;
}

}  // namespace

result<projection_status> read_status(const connection& conn, const projection& p,
                                      const projector_options& o) {
  auto fail = [&](const error& e) {
    return make_error(e.code, "projection {}: {}", p.name(), e.message);
  };
  projection_status out;
  std::int64_t built_from = 0;
  if (auto db = open_read_model(o.database)) {
    auto st = read_status(*db, p.name());
    if (!st) return fail(st.error());
    out = std::move(st).value();
    built_from = recorded_stream(*db, p.name());
    if (out.state == "live" && !detail::file_lock::held(detail::with_suffix(o.database, ".lock")))
      out.state = "stopped";  // no projector runs on it
  } else if (db.error().is(errc::not_found)) {
    auto consumer = detail::copy_consumer(p, o, false);
    if (!consumer) return fail(consumer.error());
    out.name = p.name();
    out.state = "not built";
    out.consumer = consumer->value_or("");
    out.database = detail::current_file(o.database).string();
  } else {
    return fail(db.error());
  }
  out.version = p.version();
  auto& c = *detail::state_of(conn);
  auto stream = detail::identify_stream(c, o.stream);
  if (!stream && !stream.error().is(errc::not_found)) return fail(stream.error());
  if (stream) {
    // Lag from the file's own mark: the consumer may belong to another file.
    auto lag =
        detail::messages_after(c, o.stream, *stream, p.subject_filter(), out.last_applied_seq);
    if (!lag) return fail(lag.error());
    out.pending = *lag;
    if (auto same = detail::check_stream(p, o.stream, built_from, out.max_applied_seq, *stream);
        !same) {
      out.state = "failed";
      out.error = same.error().message;
    }
  }
  detail::describe_rebuild(out, o.database, p.name());
  return out;
}

result<void> wait_applied(const std::filesystem::path& path, std::string_view projection_name,
                          std::uint64_t sequence, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Opened each time: the file may not exist yet, and a rebuild may switch it.
    std::uint64_t applied = 0;
    if (auto db = open_read_model(path)) {
      auto row = db->query_one(
          "SELECT applied_sequence FROM projection_state WHERE projection = ?1", projection_name);
      if (row && *row) applied = (*row)->get<std::uint64_t>(0);
    }
    if (applied >= sequence) return success();
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::timeout,
                        "projection {}: sequence {} not applied within {} ms (applied up to {})",
                        projection_name, sequence, timeout.count(), applied);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void block_termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_termination() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace jetsource
