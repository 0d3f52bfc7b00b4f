// detail (internal target): a connection whose socket the threads waiting for replies read.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace jetsource::detail {

/// Drives a natsConnection made with nats.c's external event loop API from the threads that wait
/// for its replies, so that a reply needs no thread hand-off on the client: the waiting thread
/// polls the socket and has nats.c parse what arrives, as libpq's caller reads its own socket.
/// With nats.c's own reader thread, a reply wakes that thread, which then wakes the waiting one
/// (7–30 % of a direct get's round trip on the 2-core machine, depending on what the other
/// threads just did: docs/performance.md "Cold loads read by the loading thread").
///
/// One thread reads at a time (the reader); the others wait until it has read (their replies
/// are queued on their subscriptions by the reader) or until it stops, then one of them reads.
/// A ticker thread reads and writes what arrives while nobody waits (the server's PINGs, late
/// replies) every `idle_tick`, and writes what nobody else writes (nats.c's PINGs, unsubscribes).
///
/// Threads: `nc_`, `fd_`, `polling_` and `write_wanted_` are set by nats.c's callbacks (under the
/// connection's lock, from any thread that publishes, connects or reconnects) and read by the
/// reader; bytes are written by one thread at a time (`write_mutex_`); `reading_`, `reads_`,
/// `waiters_` and `stop_` are guarded by `mutex_`; only the thread that set `reading_` calls
/// natsConnection_ProcessReadEvent.
class caller_reads {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds idle_tick{50};

  caller_reads() = default;
  caller_reads(const caller_reads&) = delete;
  caller_reads& operator=(const caller_reads&) = delete;
  ~caller_reads() { stop(); }

  /// Makes `opts` hand the connection's socket to this driver; before the connect.
  natsStatus install(natsOptions* opts);
  /// Starts the ticker once connected (`nc` was made with the installed options).
  void start(natsConnection* nc);
  /// Stops the ticker; before the connection is closed.
  void stop() noexcept;

  /// Writes what nats.c buffered on this connection (publishes, PINGs, PONGs), on the calling
  /// thread.
  void flush();
  /// The next message of `sub` (a synchronous subscription of this connection): NATS_TIMEOUT at
  /// `deadline`; otherwise what natsSubscription_NextMsg returns.
  natsStatus next(natsSubscription* sub, natsMsg** m, clock::time_point deadline);

 private:
  static natsStatus on_attach(void** user, void* loop, natsConnection* nc, natsSock fd);
  static natsStatus on_read(void* user, bool add);
  static natsStatus on_write(void* user, bool add);
  static natsStatus on_detach(void* user);

  void read_once(clock::time_point until);  // the reader only
  void tick();

  std::atomic<natsConnection*> nc_{nullptr};  // set again (the same) by each attach
  std::atomic<int> fd_{-1};
  std::atomic<bool> polling_{false};       // attached and not stopped by a reconnect
  std::atomic<bool> write_wanted_{false};  // nats.c buffered bytes to write

  std::mutex write_mutex_;  // one natsConnection_ProcessWriteEvent at a time
  std::mutex mutex_;
  std::condition_variable changed_;   // a read happened, or the reader stopped
  std::condition_variable stopping_;  // wakes the ticker for stop()
  bool reading_ = false;
  std::uint64_t reads_ = 0;
  int waiters_ = 0;
  bool stop_ = false;
  std::thread ticker_;
};

}  // namespace jetsource::detail
