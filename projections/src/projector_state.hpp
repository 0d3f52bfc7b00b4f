// detail: the state of one running projector, shared by its threads. The projector only ties
// the engine's parts together: the pull fetcher and the ack tracker (fetch_loop.cpp, on the
// fetcher thread), the keyed workers with one applier each (apply_loop.cpp), and the public
// calls on the caller's thread (projector.cpp).
//
// Who owns what:
// - Set by start() before any thread runs, read-only afterwards: conn_handle, conn, nc, proj,
//   opts, file, consumer, acks, stream_created; live_lock is released by stop() only.
// - The fetcher thread (while it runs; stop() joins it before touching them): pull (but for
//   pull->wake(), which stop() calls first), and the loop state inside fetch_loop. The watcher
//   thread: only its own loop state (check_position).
// - Worker i's thread: slots[i]->apply (retry/skip run there too, as posted tasks), or the
//   fetcher thread while it applies a few deliveries itself with worker 0 held idle
//   (keyed_workers::run_here, W = 1 only); after the workers are drained, stop()'s thread.
// - db: one SQLite writer connection, guarded by db_mutex (worker transactions, status reads,
//   retries; the fetcher only try_locks it to record the mark).
// - done: committed sequences, workers -> fetcher, guarded by done_mutex.
// - failure: guarded by failure_mutex; `failed` mirrors it for cheap checks.
// - Atomics, any thread: buffered, mark, events_applied, duplicates, events_per_s,
//   slots[i]->held, stopping, failed, stop_deadline, consumer_gone, stream_head,
//   stream_clustered, received, consumer_generation, deliveries_lost.
// - metrics_watch: set by start(); its collector runs on a scraping thread and reads atomics,
//   db (under db_mutex) and the consumer's info.
// Lock order: stop_mutex (stop() only) -> db_mutex -> done_mutex; failure_mutex and mark_mutex
// are never held together (fail() takes them one after the other) nor with the others.
#pragma once

#include <jetsource/projector.hpp>

#include "applier.hpp"
#include "consumer_admin.hpp"
#include "files.hpp"
#include "keyed_workers.hpp"
#include "nats/handles.hpp"
#include "projector_metrics.hpp"
#include "pull_fetcher.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::detail {

struct projector_state {
  using clock = std::chrono::steady_clock;

  projector_state(connection c, projection p) : conn_handle(std::move(c)), proj(std::move(p)) {}

  // -- set by start() ------------------------------------------------------------------------
  connection conn_handle;
  std::optional<file_lock> live_lock;
  std::filesystem::path file;  // the database file in use (see files.hpp)
  projection proj;
  projector_options opts;
  std::shared_ptr<connection_state> conn;
  natsConnection* nc = nullptr;
  std::string consumer;
  ack_mode acks = ack_mode::each;   // how the consumer is acked (consumer_admin.hpp)
  std::int64_t stream_created = 0;  // of the stream the file was built from

  // -- the engine's parts ----------------------------------------------------------------------
  std::optional<pull_fetcher> pull;
  struct slot {
    std::unique_ptr<applier> apply;
    std::atomic<std::size_t> held{0};  // messages its applier holds back for a version gap
  };
  std::vector<std::unique_ptr<slot>> slots;          // one per worker
  std::unique_ptr<keyed_workers<envelope>> workers;  // last: its threads use the rest
  std::thread fetcher;
  // Looks at the stream and the consumer every second (check_position: two JetStream API round
  // trips) on a thread of its own: on the fetcher they held up deliveries for as long as the
  // server took to answer (up to 120 ms seen in the soak, docs/performance.md).
  std::thread watcher;
  std::mutex watch_mutex;  // with watch_wake: stop() wakes the watcher
  std::condition_variable watch_wake;
  std::atomic<bool> consumer_gone{false};  // watcher -> fetcher: recreate the consumer
  // AckPolicy None only (nothing is ever sent again): the consumer sequence of the last delivery
  // the fetcher took (0 after it recreated the consumer) and, with each recreation, a new
  // generation; the watcher compares them with what the consumer says it delivered and, when the
  // last deliveries never arrived, asks the fetcher to start over (deliveries_lost).
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> consumer_generation{0};
  std::atomic<bool> deliveries_lost{false};
  // The stream as start() and then the watcher last saw it (each second): its last sequence and
  // whether its server is in a cluster. Read by status() and the metrics when the consumer's own
  // answer cannot tell its backlog (trusted_backlog).
  std::atomic<std::uint64_t> stream_head{0};
  std::atomic<bool> stream_clustered{false};
  /// The consumer's backlog by its leader's word (with AckPolicy None, plus what it delivered
  /// that is not committed); else (no answer, or one from a consumer without a leader) nullopt.
  std::optional<std::uint64_t> consumer_backlog() const;

  // -- shared ----------------------------------------------------------------------------------
  std::mutex db_mutex;
  std::optional<sqlite::database> db;

  std::mutex done_mutex;
  std::vector<std::uint64_t> done;         // committed sequences, for the fetcher
  std::atomic<std::uint64_t> buffered{0};  // fetched, not yet committed

  std::atomic<std::uint64_t> mark{0};  // every message at or below it is committed
  std::mutex mark_mutex;
  std::condition_variable mark_changed;

  std::atomic<std::uint64_t> events_applied{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<double> events_per_s{0};

  std::mutex stop_mutex;
  bool stopped = false;  // under stop_mutex
  std::atomic<bool> stopping{false};
  // stop(): when the fetcher and the workers give up on what is not committed yet (one deadline
  // for all of them, so stopping takes one drain_timeout in total). Set before `stopping`.
  std::atomic<clock::time_point> stop_deadline{clock::time_point::max()};

  mutable std::mutex failure_mutex;
  std::optional<error> failure;
  std::atomic<bool> failed{false};

  // Last: unregistered (waiting for a scrape that reads the members above) before they go.
  metrics::collector_handle metrics_watch;

  // -- fetch_loop.cpp --------------------------------------------------------------------------
  void run_fetcher();
  /// The watcher's memory between two looks.
  struct watch {
    bool stream_missing = false;
    // AckPolicy None: what the fetcher had received (and from which consumer) at the last look,
    // and whether the consumer's delivered count stood above it with nothing left to apply.
    bool short_before = false;
    std::uint64_t generation = 0, received = 0;
  };
  /// The watcher's look at what the fetcher reads from, every second: the stream must still be
  /// the one the file was built from (fails the projection otherwise), and the consumer must
  /// still exist (else it sets consumer_gone for the fetcher).
  enum class position { fine, consumer_gone, failed };
  position check_position(watch& w);
  /// AckPolicy None: sets deliveries_lost when two looks in a row (a second apart) find the
  /// consumer's delivered count above what the fetcher received, nothing arriving in between
  /// and nothing left to apply: its last deliveries were lost and it would never send them again.
  void check_tail(const jsConsumerInfo& ci, std::uint64_t generation, std::uint64_t received,
                  watch& w);
  void run_watcher();
  /// Takes the dead-letter retry/skip requests other processes left in <db>.requests/ and posts
  /// each to the worker of its aggregate, which writes the answer (repair_requests.cpp).
  void serve_repair_requests();

  // -- apply_loop.cpp --------------------------------------------------------------------------
  /// Worker `index`'s job: one group commit of `batch`, retried with back-off until it commits,
  /// the projection fails, or the stop deadline passes.
  void apply_batch(std::size_t index, std::vector<envelope>& batch);
  void announce(const batch_outcome& out, std::vector<std::uint64_t>& committed);
  void fail(error e);
  std::optional<error> failure_reason() const {
    std::lock_guard lk(failure_mutex);
    return failure;
  }
  bool past_stop_deadline() const {
    return stopping.load() && clock::now() >= stop_deadline.load();
  }
  /// Messages the appliers hold back for a version gap.
  std::size_t held() const;

  // -- the mark and the consumer (apply_loop.cpp) ----------------------------------------------
  void publish_mark(std::uint64_t m);
  /// Records the mark in the database unless a transaction is running (the next group commit
  /// records it anyway). True when written.
  bool persist_mark(std::uint64_t m, double rate);
  result<jsConsumerInfo*> consumer_info(consumer_info_ptr& holder) const;
  result<void> recreate_consumer(std::uint64_t from);
};

/// Acknowledges (or naks) one delivery by publishing to its reply subject: natsMsg_Ack cannot
/// be used on a message of a plain subscription (it crashes; ADR 0006).
void ack(natsConnection* nc, const char* reply, std::string_view what);

}  // namespace jetsource::detail
