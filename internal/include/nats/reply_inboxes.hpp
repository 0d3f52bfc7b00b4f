// detail (internal target): requests whose replies the requesting thread reads itself.
#pragma once

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
/// Threads: the free list is guarded by `mutex_`; an inbox taken from it belongs to the taking
/// thread until it is given back. nats.c's reader thread only queues replies on the
/// subscriptions. clear() runs after the connection is closed (its reader thread joined).
class reply_inboxes {
 public:
  /// Sends `data` to `subject`, replies to a pooled inbox, and returns the first reply (a status
  /// reply too, such as a direct get's "404"), errc::timeout after `timeout`, or
  /// errc::unreachable when nothing listens to `subject` (the server's "503"). A late reply to an
  /// earlier request that timed out is dropped. `what` names the request in errors.
  result<msg_ptr> request(natsConnection* nc, const std::string& subject, std::string_view data,
                          std::chrono::milliseconds timeout, std::string_view what);
  /// Destroys the pooled subscriptions; only once the connection is closed.
  void clear() noexcept;

 private:
  struct inbox {
    subscription_ptr sub;  // <prefix>*
    std::string prefix;    // "_INBOX.<nuid>."
    std::uint64_t next = 0;
  };
  result<std::unique_ptr<inbox>> take(natsConnection* nc, std::string_view what);
  void give_back(std::unique_ptr<inbox> in);

  std::mutex mutex_;
  std::vector<std::unique_ptr<inbox>> free_;
};

}  // namespace jetsource::detail
