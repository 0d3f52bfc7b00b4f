// detail (internal target): requests whose replies the requesting thread reads itself.
#pragma once

#include "nats/caller_reads.hpp"
#include "nats/handles.hpp"

#include <jetsource/result.hpp>

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource::detail {

/// Requests answered on synchronous inbox subscriptions of the connection's own, kept in a pool.
/// nats.c 3.4.1's natsConnection_Request hands each reply from its reader thread to the response
/// multiplexer's delivery thread, which then wakes the requester: two thread hand-offs per
/// request. A requester waiting on a synchronous subscription is woken by the reader itself: one
/// (a direct get's round trip: 105 against 77 µs median on the 2-core machine,
/// docs/performance.md "Cold loads: one thread hand-off less").
///
/// On a connection driven by caller_reads (`driver`), the waiting thread reads the socket itself:
/// no hand-off at all.
///
/// Threads: the free list is guarded by `mutex_`; an inbox taken from it belongs to the taking
/// thread until it is given back. nats.c's reader thread (or the driver's reader) only queues
/// replies on the subscriptions. clear() runs after the connection is closed (its reader thread
/// joined).
class reply_inboxes {
  struct inbox {
    subscription_ptr sub;  // <prefix>*
    std::string prefix;    // "_INBOX.<nuid>."
    std::uint64_t next = 0;
  };

 public:
  /// Several requests in flight on one pooled inbox, their replies read by the owning thread;
  /// the inbox goes back to the pool when the batch ends.
  class batch {
   public:
    batch(batch&&) noexcept = default;
    batch& operator=(batch&&) = delete;
    batch(const batch&) = delete;
    batch& operator=(const batch&) = delete;
    ~batch();
    /// Where request `i` (< the batch's size) asks to be answered.
    std::string reply_subject(std::size_t i) const;
    /// Sends request `i`: `data` to `subject`, answered at reply_subject(i).
    natsStatus send(std::size_t i, const std::string& subject, std::string_view data);
    /// The next reply to one of this batch's requests, and which (`index`); a late reply to an
    /// earlier batch is dropped. NATS_TIMEOUT after `wait`; NATS_NO_RESPONDERS when the server
    /// said that nothing listens to one request's subject (nats.c does not say which).
    natsStatus next(msg_ptr& m, std::size_t& index, std::chrono::milliseconds wait);

   private:
    friend class reply_inboxes;
    batch(reply_inboxes& pool, std::unique_ptr<inbox> in, std::size_t size);
    reply_inboxes* pool_;
    std::unique_ptr<inbox> in_;  // null once moved from
    std::uint64_t first_;        // the first request's token
    std::size_t size_;
    bool broken_ = false;  // the subscription failed: not pooled again
  };

  /// Requests go out on `nc`; `driver`: the caller_reads that drives `nc`, or null (nats.c's
  /// reader thread reads it).
  explicit reply_inboxes(natsConnection* nc, caller_reads* driver = nullptr)
      : nc_(nc), driver_(driver) {}

  /// An inbox for `size` requests.
  result<batch> start(std::size_t size, std::string_view what);
  /// Sends `data` to `subject`, replies to a pooled inbox, and returns the first reply (a status
  /// reply too, such as a direct get's "404"), errc::timeout after `timeout`, or
  /// errc::unreachable when nothing listens to `subject` (the server's "503"). A late reply to an
  /// earlier request that timed out is dropped. `what` names the request in errors.
  result<msg_ptr> request(const std::string& subject, std::string_view data,
                          std::chrono::milliseconds timeout, std::string_view what);
  /// Destroys the pooled subscriptions; only once the connection is closed.
  void clear() noexcept;

 private:
  result<std::unique_ptr<inbox>> take(std::string_view what);
  void give_back(std::unique_ptr<inbox> in);

  natsConnection* nc_;
  caller_reads* driver_;

  std::mutex mutex_;
  std::vector<std::unique_ptr<inbox>> free_;
};

}  // namespace jetsource::detail
