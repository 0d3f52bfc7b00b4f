// detail: the pull side of one durable consumer, driven by hand (docs/adr/0006): the only code
// that calls nats.c to pull. It keeps up to two pull requests outstanding on a private inbox,
// counts the messages the server may still send, handles status messages (heartbeats, the end
// of a request, rejections) and drops requests the server never answered (a client deadline:
// nats-server 2.9 sometimes lets an expired request go without a status; messages arriving
// after a request's expiry count against the next one). Each request asks
// for idle heartbeats: when neither a message nor a heartbeat comes for three of them, the
// outstanding requests are given up at once instead of at their deadline (a stall of
// pull_expires + 250 ms otherwise: docs/performance.md, "Soak").
//
// Thread-safety: one owner (the projector's fetcher thread), except wake(), which any thread may
// call (it reads only what open() set). Messages it returns are the caller's (natsMsg has one
// owner).
#pragma once

#include <jetsource/result.hpp>

#include "nats/handles.hpp"
#include "wire/ack_subject.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

namespace jetsource::detail {

class pull_fetcher {
 public:
  /// Subscribes to a new inbox for the replies of pulls from `stream`'s durable `consumer`.
  static result<pull_fetcher> open(natsConnection* nc, const std::string& stream,
                                   const std::string& consumer, std::string name);
  pull_fetcher(pull_fetcher&&) noexcept = default;
  pull_fetcher& operator=(pull_fetcher&&) = delete;
  /// Retires the inbox subscription (detail::retire): replies and heartbeats of outstanding
  /// pulls may still be arriving.
  ~pull_fetcher() { retire(nc_, std::move(sub_)); }

  /// Sends a pull request for `batch` messages waiting at most `expires`, unless two are
  /// outstanding already. The caller decides whether there is room for them.
  void request(int batch, std::chrono::milliseconds expires);

  /// One delivery: the message and its ack subject's numbers (views into the message).
  struct delivery {
    msg_ptr msg;
    ack_meta meta;
  };
  enum class outcome { message, nothing, closed };
  /// Waits for the next message of the consumer (a few ms when no request is outstanding, at
  /// most `longest` otherwise); status messages are handled here. `closed`: the connection or
  /// the subscription is gone for good. With `longest` 0 (taking what has arrived) it reads no
  /// clock: request expiries are checked by the next call that may wait.
  outcome next(delivery& out, std::chrono::milliseconds longest = std::chrono::milliseconds(20));

  /// Ends the owner's wait in next() by a pull request without waiting (no_wait, one message),
  /// answered at once: next() returns `nothing` for its status, or the one message it brings.
  /// stop() then takes one round trip, not up to `longest`. Any thread.
  void wake() const noexcept;

  /// The consumer was recreated: forget the outstanding requests and drop every message of the
  /// old consumer already received.
  void reset();

  std::size_t requests() const noexcept { return requests_.size(); }
  /// Messages the server may still send for the outstanding requests.
  std::uint64_t outstanding() const noexcept { return outstanding_; }
  /// How many times the outstanding requests were given up for silence (see above).
  std::uint64_t renewed() const noexcept { return renewed_; }

 private:
  struct pull {
    std::uint64_t id;
    std::uint64_t remaining;
    std::chrono::steady_clock::time_point deadline;  // given up unanswered after it
    std::chrono::steady_clock::time_point expiry;    // over at the server after it
  };
  pull_fetcher(natsConnection* nc, std::string name) : nc_(nc), name_(std::move(name)) {}
  void drop(std::uint64_t id);
  void expire(std::chrono::steady_clock::time_point now);

  natsConnection* nc_ = nullptr;
  std::string name_;          // for log lines: the projection's name
  std::string next_subject_;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
  std::string inbox_;
  std::string wake_subject_;  // <inbox>.wake: the reply subject of wake()'s request
  subscription_ptr sub_;
  std::deque<pull> requests_;
  ack_subject_reader ack_reader_;  // the consumer's ack subjects share their prefix
  std::uint64_t next_id_ = 1;
  std::uint64_t outstanding_ = 0;
  std::uint64_t renewed_ = 0;
  std::chrono::milliseconds heartbeat_{50};
  std::chrono::steady_clock::time_point last_heard_ = std::chrono::steady_clock::now();
  // The last clock reading (next() reads it only when it may wait), and whether something was
  // heard since: last_heard_ moves to the next reading.
  std::chrono::steady_clock::time_point now_ = last_heard_;
  bool heard_ = false;
};

}  // namespace jetsource::detail
