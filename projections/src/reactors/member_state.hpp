// detail: the state of one running reactor member, shared by its threads (ADR 0014). The member
// ties the engine's parts together: the lease keeper (lease_keeper.cpp, its own thread), the
// cursor (cursor.cpp: pull_fetcher + per-partition ack_trackers, on the fetcher thread; or
// queue_mode.cpp), the keyed workers with their aggregate lines (reactor_worker.cpp), and the
// public calls on the caller's thread (reactor_member.cpp).
//
// Who owns what:
// - Set by start() before any thread runs, read-only afterwards: conn_handle, conn, nc, r, opts,
//   instance, incarnation, host, control, bucket, meta, facts, store.
// - consumer: set by start(); then the fetcher thread's (an ordered cursor takes a new name
//   after a creation that timed out), read by stop() once that thread is joined.
// - The fetcher thread: pull and the cursor's loop state. The keeper thread: its group view.
// - Worker i's thread: lines[i] (park retries run there too, as posted tasks).
// - owned: thread-safe (ownership.hpp). reports: workers -> fetcher, under report_mutex.
// - Atomics, any thread: buffered, position(_time_ns), pending, counters, stopping,
//   fetcher_done, failed.
// - failure: guarded by failure_mutex (fail() on the fetcher thread, read by any thread);
//   refusals_seen: the fetcher thread.
// - metrics_watch: its collector runs on a scraping thread and reads atomics only.
#pragma once

#include <jetsource/event_store.hpp>
#include <jetsource/reactor.hpp>

#include "applier.hpp"  // envelope
#include "keyed_workers.hpp"
#include "nats/handles.hpp"
#include "pull_fetcher.hpp"
#include "reactors/group_bucket.hpp"
#include "reactors/ownership.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::detail {

/// One commit for a worker.
struct reactor_item {
  envelope e;
  std::uint32_t partition = 0;
  std::uint64_t epoch = 0;
  bool tracked = true;  ///< from the cursor (reported back); false: re-read for a park retry
};

/// A worker's answer about one tracked item: settled (handled, skipped, parked) or abandoned
/// (not handled: the partition was lost or released, or the member stops).
struct item_report {
  std::uint32_t partition = 0;
  std::uint64_t epoch = 0;
  std::uint64_t sequence = 0;
  bool settled = false;
};

class aggregate_lines;  // reactor_worker.hpp

struct reactor_member_state {
  using clock = std::chrono::steady_clock;

  reactor_member_state(connection c, reactor rx, reactor_options o);
  ~reactor_member_state();

  // -- set by start() ------------------------------------------------------------------------
  connection conn_handle;
  reactor r;
  reactor_options opts;
  std::shared_ptr<connection_state> conn;
  natsConnection* nc = nullptr;
  std::string instance, incarnation, host;
  long pid = 0;
  // The lease keeper's own connection (the bucket's): on the member's connection, renewals
  // queued behind the cursor's deliveries and leases were lost under load.
  std::optional<connection> control;
  std::optional<group_bucket> bucket;
  group_meta meta;
  stream_facts facts;
  std::string consumer;
  std::optional<event_store> store;   // park retries re-read an aggregate's commits
  std::uint64_t member_revision = 0;  // of member.<instance> when claimed (the keeper's after)

  // -- the engine's parts ----------------------------------------------------------------------
  std::unique_ptr<ownership> owned;
  std::optional<pull_fetcher> pull;
  std::vector<std::unique_ptr<aggregate_lines>> lines;   // one per worker
  std::unique_ptr<keyed_workers<reactor_item>> workers;  // after lines: its threads use them
  std::thread fetcher, keeper;

  // -- shared ----------------------------------------------------------------------------------
  std::mutex report_mutex;
  std::vector<item_report> reports;
  std::atomic<std::uint64_t> buffered{0};  // dispatched, not yet reported
  std::atomic<std::uint64_t> position{0}, pending{0};
  std::atomic<std::uint64_t> position_time_ns{0};  // server's store time of `position`'s message
  std::atomic<std::uint64_t> handled{0}, retries{0}, parked_count{0}, dead_count{0};
  std::atomic<bool> stopping{false};      // stop(): the cursor settles and ends
  std::atomic<bool> fetcher_done{false};  // the cursor ended: the keeper writes the last leases
  std::atomic<bool> keeper_stop{false};
  std::atomic<bool> failed{false};  // fail(): the member stopped working by itself
  mutable std::mutex failure_mutex;
  std::optional<error> failure;  // under failure_mutex
  std::uint64_t refusals_seen = 0;
  clock::time_point started_at = clock::now();
  std::mutex stop_mutex;
  bool stopped = false;  // under stop_mutex
  metrics::collector_handle metrics_watch;

  std::uint32_t partitions() const noexcept { return meta.partitions; }
  std::chrono::milliseconds lease() const noexcept { return opts.lease; }
  bool queue_mode() const noexcept { return opts.mode == delivery::queue; }

  void report(const item_report& r) {
    std::lock_guard lk(report_mutex);
    reports.push_back(r);
  }

  /// Fetcher thread: the server refused this member's pulls, acks or consumer requests (a
  /// permissions violation, noted on the connection since start) fails the member. True when it
  /// failed (now or before).
  bool check_refused();
  /// Records why the member stops working (the first reason only) and stops its cursor: it
  /// settles, the workers finish, the keeper hands the partitions over (after_cursor()).
  void fail(error e);
  /// Fetcher thread, when its loop ended: a failed member hands its partitions over now (without
  /// waiting for stop()), the handlers done first.
  void after_cursor();

  // -- cursor.cpp / queue_mode.cpp / lease_keeper.cpp ------------------------------------------
  void run_cursor();
  void run_queue();
  void run_keeper();
  /// Claims member.<instance> (waits for an earlier holder of the name to expire).
  result<void> claim_member();

  // -- reactor_worker.cpp ----------------------------------------------------------------------
  void run_batch(std::size_t index, std::vector<reactor_item>& batch);
  /// A park record of an owned partition with a request: run it on the aggregate's worker.
  void serve_park_request(const park_value& rec, std::uint64_t revision, std::uint64_t epoch);
  /// A new tenure of p: its parked aggregates (from the bucket) are known before any dispatch.
  void load_parked(const park_value& rec, std::uint64_t revision, std::uint64_t epoch);
  /// The member stops, or p is given up: lines waiting for a retry report their items abandoned.
  void abandon_waiting(std::optional<std::uint32_t> p);
};

/// Queue mode: names the shared durable and creates it when missing (queue_mode.cpp).
result<void> prepare_queue(reactor_member_state& s);

/// Partition of a subject <prefix>.<Type>.<p>.<id> (nullopt when it has no such token).
std::optional<std::uint32_t> subject_partition(std::string_view subject);

}  // namespace jetsource::detail
