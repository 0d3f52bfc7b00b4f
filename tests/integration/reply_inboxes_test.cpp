// Requests on the connection's pooled inbox subscriptions
// (internal/include/nats/reply_inboxes.hpp), on the read connection and on the connection itself,
// against a real nats-server and a responder on a second
// connection: each request gets its own reply, also after an earlier one timed out and its reply
// came late, from several threads at once; a request nothing listens to gets the server's "no
// responders" status.
#include "nats/reply_inboxes.hpp"
#include "nats/handles.hpp"
#include "nats_fixture.hpp"
#include "subject_watcher.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

// Echoes each request's body back; a body starting with "slow" after 300 ms.
class echo_service : public test_responder {
 public:
  explicit echo_service(const std::string& url)
      : test_responder(url, "svc.echo", [](natsConnection* nc, natsMsg* m) {
          const std::string body(natsMsg_GetData(m),
                                 static_cast<std::size_t>(natsMsg_GetDataLength(m)));
          if (body.starts_with("slow")) std::this_thread::sleep_for(300ms);
          const char* reply = natsMsg_GetReply(m);
          return reply != nullptr &&
                 natsConnection_Publish(nc, reply, body.data(), static_cast<int>(body.size())) ==
                     NATS_OK;
        }) {}
};

// On the read connection (its socket read by the waiting thread, nats/caller_reads.hpp: the
// default), or on the connection itself (nats.c's reader thread).
class ReplyInboxesTest : public nats_test, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    nats_test::SetUp();
    if (GetParam()) {
      ASSERT_NE(detail::state_of(*conn_)->reads, nullptr);
      return;
    }
    auto o = conn_->options();
    o.separate_read_connection = false;
    auto c = connection::connect(o);
    ASSERT_TRUE(c) << c.error();
    conn_.emplace(std::move(c).value());
    ASSERT_EQ(detail::state_of(*conn_)->reads, nullptr);
  }

  result<std::string> ask(const std::string& body, std::chrono::milliseconds timeout = 2s) {
    auto& st = *detail::state_of(*conn_);
    auto m = st.replies->request("svc.echo", body, timeout, "ask svc.echo");
    if (!m) return std::move(m).error();
    return std::string(natsMsg_GetData(m->get()),
                       static_cast<std::size_t>(natsMsg_GetDataLength(m->get())));
  }
};

TEST_P(ReplyInboxesTest, ALateReplyToATimedOutRequestIsNotTheNextRequestsReply) {
  echo_service svc(server_->url());
  auto slow = ask("slow one", 100ms);
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, errc::timeout);
  std::this_thread::sleep_for(400ms);  // its reply is now queued on the inbox
  auto next = ask("second");
  ASSERT_TRUE(next) << next.error();
  EXPECT_EQ(*next, "second");
}

TEST_P(ReplyInboxesTest, EachOfManyConcurrentRequestsGetsItsOwnReply) {
  echo_service svc(server_->url());
  constexpr int threads = 4, each = 200;
  std::vector<int> wrong(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        const auto body = std::to_string(t) + "/" + std::to_string(i);
        auto got = ask(body);
        if (!got || *got != body)
          ADD_FAILURE() << body << ": " << (got ? *got : got.error().message);
        wrong[static_cast<std::size_t>(t)] += !got || *got != body;
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(wrong[static_cast<std::size_t>(t)], 0) << t;
}

TEST_P(ReplyInboxesTest, ARequestNothingListensToIsUnreachableAndTheNextOneIsAnswered) {
  auto& st = *detail::state_of(*conn_);
  auto m = st.replies->request("svc.nobody", {}, 2s, "ask svc.nobody");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, errc::unreachable) << m.error();
  echo_service svc(server_->url());
  auto next = ask("after");
  ASSERT_TRUE(next) << next.error();
  EXPECT_EQ(*next, "after");
}

// A batch: several requests in flight on one inbox, each reply handed back with its index; a
// late reply to an earlier request on the same inbox is not one of them.
TEST_P(ReplyInboxesTest, ABatchHandsEachReplyBackWithItsIndex) {
  echo_service svc(server_->url());
  auto& st = *detail::state_of(*conn_);
  auto late = ask("slow, times out", 50ms);  // its reply comes while the batch waits
  ASSERT_FALSE(late);
  const std::vector<std::string> bodies{"first", "second", "third"};
  auto b = st.replies->start(bodies.size(), "batch");
  ASSERT_TRUE(b) << b.error();
  for (std::size_t i = 0; i < bodies.size(); ++i)
    ASSERT_EQ(b->send(i, "svc.echo", bodies[i]), NATS_OK);
  std::vector<std::size_t> order;
  for (std::size_t n = 0; n < bodies.size(); ++n) {
    detail::msg_ptr m;
    std::size_t index = 99;
    ASSERT_EQ(b->next(m, index, 2s), NATS_OK);
    ASSERT_LT(index, bodies.size());
    EXPECT_EQ(std::string(natsMsg_GetData(m.get()),
                          static_cast<std::size_t>(natsMsg_GetDataLength(m.get()))),
              bodies[index]);
    order.push_back(index);
  }
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2}));
}

INSTANTIATE_TEST_SUITE_P(Connections, ReplyInboxesTest, ::testing::Bool(), [](const auto& info) {
  return info.param ? "ReadConnection" : "OneConnection";
});

}  // namespace
}  // namespace jetsource::test
