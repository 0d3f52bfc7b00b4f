// detail (internal target): RAII handles over nats.c objects, the mapping of nats.c statuses to
// jetsource errors, and the state behind a jetsource::connection.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/result.hpp>

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace jetsource::detail {

// Deleters never throw; each only destroys what it owns.
struct nats_deleter {
  void operator()(natsOptions* p) const noexcept { natsOptions_Destroy(p); }
  void operator()(natsConnection* p) const noexcept { natsConnection_Destroy(p); }
  void operator()(jsCtx* p) const noexcept { jsCtx_Destroy(p); }
  void operator()(natsMsg* p) const noexcept { natsMsg_Destroy(p); }
  void operator()(natsSubscription* p) const noexcept { natsSubscription_Destroy(p); }
  void operator()(jsStreamInfo* p) const noexcept { jsStreamInfo_Destroy(p); }
  void operator()(jsPubAck* p) const noexcept { jsPubAck_Destroy(p); }
  void operator()(jsConsumerInfo* p) const noexcept { jsConsumerInfo_Destroy(p); }
  void operator()(natsInbox* p) const noexcept { natsInbox_Destroy(p); }
};

using options_ptr = std::unique_ptr<natsOptions, nats_deleter>;
using connection_ptr = std::unique_ptr<natsConnection, nats_deleter>;
using js_ptr = std::unique_ptr<jsCtx, nats_deleter>;
using msg_ptr = std::unique_ptr<natsMsg, nats_deleter>;
using subscription_ptr = std::unique_ptr<natsSubscription, nats_deleter>;
using stream_info_ptr = std::unique_ptr<jsStreamInfo, nats_deleter>;
using pub_ack_ptr = std::unique_ptr<jsPubAck, nats_deleter>;
using consumer_info_ptr = std::unique_ptr<jsConsumerInfo, nats_deleter>;
using inbox_ptr = std::unique_ptr<natsInbox, nats_deleter>;

/// Ends a subscription that may still be receiving (an ordered consumer's heartbeats, a pull's
/// late replies): unsubscribes, waits for one round trip (a flush, at most `patience`), then
/// destroys it. nats.c 3.4.1's reader thread uses a subscription it looked up without taking a
/// reference (natsConn_processMsg): destroyed at once, one can be freed under it (a SEGV, seen in
/// 1 test run in 15). Once the flush's PONG is in, the reader has finished every message it had
/// read before, and the UNSUB keeps later ones away. No round trip unless connected.
void retire(natsConnection* nc, subscription_ptr sub,
            std::chrono::milliseconds patience = std::chrono::seconds{2}) noexcept;

/// Maps a nats.c status (and JetStream error code, when known) to a jetsource error, with
/// nats.c's last error text. `what` says what was being done ("append to orders.Order.3.x").
error nats_error(natsStatus s, std::string_view what,
                 jsErrCode js_code = static_cast<jsErrCode>(0));

/// Notes a "Permissions Violation" the server reported on a connection of this process (nats.c
/// reports them only asynchronously, through the error handler: the request that caused one just
/// times out). Kept for `window` (the connection's request timeout and a margin): a nats_error
/// for a timeout or NATS_NOT_PERMITTED within it becomes errc::server_error naming the violation.
void note_permission_violation(std::string text, std::chrono::milliseconds window);

/// The error for what the server refused for want of permission: `what` says what was refused
/// ("append to orders.Order.x"), `why` quotes the server.
error permission_refused(std::string_view what, std::string_view why);

/// A header value of a message ("" when absent).
std::string header(natsMsg* m, const char* name);

/// A received message's header block as it arrived ("NATS/1.0...\r\n\r\n"), read in place: nats.c
/// 3.4.1 keeps a received message in one allocation, subject\0 [reply\0] headers\0 data\0, and
/// its natsMsgHeader_Get first copies every header into a hash table (a malloc each). nullopt
/// when the message has no headers or is laid out otherwise (then ask natsMsgHeader_Get).
std::optional<std::string_view> header_block(natsMsg* m) noexcept;

/// The permission violations the server reported on one connection, for the code whose
/// messages it drops without a reply (a pull request: nothing answers it, so nothing times out).
/// Written by nats.c's error-handler thread, read by any thread: guarded by its mutex; `count`
/// lets a reader skip the lock while nothing new came.
class permission_notes {
 public:
  using clock = std::chrono::steady_clock;
  void note(std::string text);
  /// How many violations were noted so far.
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  /// The server's words about the latest violation noted at or after `since` whose text holds
  /// `needle` (the server quotes the subject: `"$JS.ACK.ORDERS.` matches any ack of ORDERS).
  std::optional<std::string> about(std::string_view needle, clock::time_point since) const;

 private:
  struct noted {
    std::string text;
    clock::time_point at;
  };
  mutable std::mutex mutex_;
  std::deque<noted> recent_;  // the latest 32
  std::atomic<std::uint64_t> count_{0};
};

class reply_inboxes;  // nats/reply_inboxes.hpp
class caller_reads;   // nats/caller_reads.hpp

/// The process's connection: options, the natsConnection, a plain JetStream context.
struct connection_state {
  connection_options options;
  permission_notes refused;  // what the server refused on this connection (its error handler)
  options_ptr opts;
  connection_ptr nc;
  js_ptr js;  // for API requests and sync publishes (no async handlers)
  // Requests whose replies the caller reads itself (direct gets of heads): on a second
  // connection whose socket the waiting thread reads (`reads`, `reads_nc`;
  // connection_options::separate_read_connection), or on `nc`.
  options_ptr reads_opts;
  std::unique_ptr<caller_reads> reads;
  connection_ptr reads_nc;
  std::unique_ptr<reply_inboxes> replies;

  ~connection_state();
};

/// The state behind a connection (its natsConnection and JetStream context), for the libraries'
/// own code: the public class has no accessor. Reached through connection's protected member
/// (a pointer to member formed in a derived class may be applied to any connection), so no
/// friend is needed and no internal type appears in connection's public interface.
struct connection_access : connection {
  static const std::shared_ptr<connection_state>& state_of(const connection& c) noexcept {
    return c.*(&connection_access::state_);
  }
};

inline const std::shared_ptr<connection_state>& state_of(const connection& c) noexcept {
  return connection_access::state_of(c);
}

}  // namespace jetsource::detail
