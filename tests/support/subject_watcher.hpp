// A second, plain nats.c connection subscribed to a subject (wildcards welcome) for a test to see
// what the code under test sends or receives: API requests, inbox replies, stolen deliveries
// (subject_watcher); or to answer them, playing a service or a server member (test_responder).
//
// Threads: subject_watcher: nats.c's reader thread of the connection fills the subscription; the
// test's thread reads it (next) and ends it (the destructor). test_responder: the handler runs
// on the subscription's delivery thread; `answered` is read by any thread.
//
// The connection closes first, which joins its reader thread, and only then is the subscription
// destroyed. nats.c 3.4.1 looks a message's subscription up and then locks it without holding a
// reference (natsConn_processMsg): destroying a subscription that still receives can free it in
// between (a SEGV under ASan, seen in make test). jetsource's own code uses detail::retire.
#pragma once

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace jetsource::test {

class subject_watcher {
 public:
  subject_watcher(const std::string& url, const std::string& subject) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc_, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_SubscribeSync(&sub_, nc_, subject.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_Flush(nc_), NATS_OK);  // the server knows the interest
  }
  ~subject_watcher() {
    natsConnection_Close(nc_);
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  subject_watcher(const subject_watcher&) = delete;
  subject_watcher& operator=(const subject_watcher&) = delete;

  /// The next message (the caller destroys it), or nullptr after `wait` without one.
  natsMsg* next(std::chrono::milliseconds wait) {
    natsMsg* m = nullptr;
    return natsSubscription_NextMsg(&m, sub_, wait.count()) == NATS_OK ? m : nullptr;
  }
  /// One round trip: every message the server routed here before now is then in the queue.
  void flush() { EXPECT_EQ(natsConnection_Flush(nc_), NATS_OK); }
  natsConnection* connection() const noexcept { return nc_; }

 private:
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
};

/// Answers the messages on `subject` with `handler` (true: it answered; the message is only
/// lent), on a connection of its own, until destroyed.
class test_responder {
 public:
  using handler = std::function<bool(natsConnection*, natsMsg*)>;
  test_responder(const std::string& url, const std::string& subject, handler h)
      : handler_(std::move(h)) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc_, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_Subscribe(&sub_, nc_, subject.c_str(), &test_responder::on_msg, this),
              NATS_OK);
    EXPECT_EQ(natsConnection_Flush(nc_), NATS_OK);  // the server knows the interest
  }
  ~test_responder() {  // closed first: joins the thread that calls the handler
    natsConnection_Close(nc_);
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  test_responder(const test_responder&) = delete;
  test_responder& operator=(const test_responder&) = delete;
  /// How many messages the handler answered so far.
  int answered() const { return answered_.load(); }
  /// Whether it answered at least `n` within `patience` (its count goes up after the answer is
  /// sent: a requester may have the answer first).
  bool answered_at_least(int n,
                         std::chrono::milliseconds patience = std::chrono::seconds{2}) const {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (answered_.load() < n && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    return answered_.load() >= n;
  }

 private:
  static void on_msg(natsConnection* nc, natsSubscription*, natsMsg* m, void* self) {
    auto* r = static_cast<test_responder*>(self);
    if (r->handler_(nc, m)) r->answered_.fetch_add(1);
    natsMsg_Destroy(m);
  }
  handler handler_;
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::atomic<int> answered_{0};
};

}  // namespace jetsource::test
