// detail: the event store's private state (JetStream contexts, async-append bookkeeping, the
// reaper of ordered consumers). The wire-format constants are in the internal target
// (wire/headers.hpp).
#pragma once

#include <jetsource/event_store.hpp>

#include "log.hpp"
#include "nats/handles.hpp"
#include "wire/headers.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace jetsource::detail {

/// Bookkeeping of async appends: a bounded number in flight, each mapped by its message (nats.c
/// hands the same natsMsg* back to the ack handler) to the callback that reports its outcome. Lives
/// on the heap at a stable address: nats.c's ack handler gets a raw pointer to it.
struct async_core {
  struct pending {
    event_store::append_callback done;  // empty: an internal publish (snapshot), only logged
    std::uint64_t version = 0;
    std::string subject;
    std::string commit_id;
    bool slot = false;   // Nats-Msg-Id was a commit slot: a duplicate may be a conflict
    bool state = false;  // the commit carries the aggregate's state (ADR 0022)
  };

  std::mutex mutex;
  std::condition_variable changed;  // in_flight reached 0 (flush, close)
  std::condition_variable space;    // in_flight went down by a refill batch, with waiters
  std::size_t in_flight = 0;        // accepted, callback not yet returned
  std::size_t max_in_flight = 1;
  std::size_t waiting = 0;  // appends blocked on a full window

  // After one more outcome (called with `mutex` held, in_flight already decremented): wakes
  // what waits for it. Blocked appends are woken in batches, once 1/16 of the window is free,
  // not one per ack: waking every blocked thread on every ack cost more than the appends.
  void released() {
    if (in_flight == 0) changed.notify_all();
    if (waiting > 0 && in_flight + std::max<std::size_t>(1, max_in_flight / 16) <= max_in_flight)
      space.notify_all();
  }
  std::unordered_map<const natsMsg*, pending> by_msg;  // in flight -> callback
};

/// Deletes the ordered consumers of finished reads (natsSubscription_Unsubscribe: a round trip)
/// on a thread of its own, so a read returns as soon as its last message is in. Each is
/// retired (detail::retire: unsubscribed, flushed, destroyed), since an ordered consumer may
/// still be receiving: destroying it right after its UNSUB races with nats.c's reader thread.
class subscription_reaper {
 public:
  subscription_reaper() = default;
  subscription_reaper(const subscription_reaper&) = delete;
  subscription_reaper& operator=(const subscription_reaper&) = delete;
  ~subscription_reaper();  // retires whatever is still queued, then joins

  /// `sub` is a subscription of `nc`, which outlives the reaper.
  void add(natsConnection* nc, subscription_ptr sub);

 private:
  struct entry {
    natsConnection* nc;
    subscription_ptr sub;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<entry> queue_;
  bool stopping_ = false;
  std::thread thread_;  // started by the first add
};

/// The state behind an event_store (shared by its copies).
struct store_state {
  store_options options;
  concurrency_scheme scheme = concurrency_scheme::subject_sequence;  // chosen by open
  std::string snapshot_stream;                                       // <stream>_SNAPSHOTS
  std::string snapshot_prefix;                                       // jetsource-snapshots.<stream>
  std::shared_ptr<connection_state> conn;
  std::shared_ptr<async_core> async;  // kept alive past the contexts (see ~store_state)
  js_ptr js;                          // API requests, direct gets, sync publishes
  js_ptr js_async;                    // async publishes; its ack handler reports to `async`
  std::unique_ptr<subscription_reaper> reaper = std::make_unique<subscription_reaper>();
  // steady_clock ticks until which the snapshot stream counts as deleted (0: present)
  mutable std::atomic<std::int64_t> snapshots_missing_until{0};

  store_state() = default;
  store_state(const store_state&) = delete;
  store_state& operator=(const store_state&) = delete;
  ~store_state();
};

}  // namespace jetsource::detail
