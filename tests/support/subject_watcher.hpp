// A second, plain nats.c connection subscribed to a subject (wildcards welcome) for a test to see
// what the code under test sends or receives: API requests, inbox replies, stolen deliveries.
//
// Threads: nats.c's reader thread of the connection fills the subscription; the test's thread
// reads it (next) and ends it (the destructor).
//
// The connection closes first, which joins its reader thread, and only then is the subscription
// destroyed. nats.c 3.4.1 looks a message's subscription up and then locks it without holding a
// reference (natsConn_processMsg): destroying a subscription that still receives can free it in
// between (a SEGV under ASan, seen in make test). jetsource's own code uses detail::retire.
#pragma once

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <string>

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

}  // namespace jetsource::test
