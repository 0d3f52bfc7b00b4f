// The sample's webhook client (order_system/webhook.hpp) against a real HTTP sink on a loopback
// port: a 2xx answer is success, a 500 or no answer in time is an error, the headers and the
// body arrive exactly as given; bad URLs are refused before any I/O.
#include <order_system/webhook.hpp>

#include "webhook_sink.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using jetsource::errc;
using jetsource::test::webhook_sink;
using order_system::webhook;

namespace {
webhook make(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
  auto h =
      webhook::make({.url = url, .connect_timeout = std::chrono::seconds{2}, .timeout = timeout});
  EXPECT_TRUE(h) << h.error();
  return std::move(h).value();
}
}  // namespace

TEST(WebhookTest, A2xxAnswerIsSuccessAndTheRequestArrivesExactly) {
  webhook_sink sink;
  auto hook = make(sink.url("/a/b"));
  const std::string body =
      R"({"event":"OrderPlaced","order_id":"o-1","customer_id":"c-1","version":4})";
  auto r = hook.post(body, "notifications:Order:o-1:4");
  ASSERT_TRUE(r) << r.error();
  auto got = sink.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].path, "/a/b");
  EXPECT_EQ(got[0].body, body);
  EXPECT_EQ(got[0].content_type, "application/json");
  EXPECT_EQ(got[0].idempotency_key, "notifications:Order:o-1:4");
}

TEST(WebhookTest, AUrlWithoutAPathPostsToTheRoot) {
  webhook_sink sink;
  auto hook = make("http://127.0.0.1:" + std::to_string(sink.port()));
  ASSERT_TRUE(hook.post("{}", "k"));
  EXPECT_EQ(sink.requests().at(0).path, "/");
}

TEST(WebhookTest, A500IsAServerError) {
  webhook_sink sink;
  sink.fail_all(webhook_sink::failure::status_500);
  auto r = make(sink.url()).post(R"({"order_id":"o-1"})", "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::server_error);
  EXPECT_NE(r.error().message.find("500"), std::string::npos) << r.error().message;
}

TEST(WebhookTest, OnlyTheFailingOrderFails) {
  webhook_sink sink;
  sink.fail_order("o-bad", webhook_sink::failure::status_500);
  auto hook = make(sink.url());
  EXPECT_FALSE(hook.post(R"({"order_id":"o-bad"})", "k1"));
  EXPECT_TRUE(hook.post(R"({"order_id":"o-good"})", "k2"));
}

TEST(WebhookTest, NoAnswerWithinTheTimeoutIsATimeout) {
  webhook_sink sink(std::chrono::seconds{3});
  sink.fail_all(webhook_sink::failure::delay);
  auto start = std::chrono::steady_clock::now();
  auto r = make(sink.url(), std::chrono::milliseconds{300}).post("{}", "k");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout) << r.error();
  EXPECT_GE(took, std::chrono::milliseconds{250});
  EXPECT_LT(took, std::chrono::seconds{2});
}

TEST(WebhookTest, NobodyListeningIsUnreachable) {
  // A port that was free a moment ago (bound, then closed).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  auto r = make("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/x").post("{}", "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unreachable) << r.error();
}

TEST(WebhookTest, BadUrlsAreRefused) {
  for (std::string url :
       {"", "127.0.0.1:80/x", "ftp://h/x", "http://", "http:///x", "http://h x/"}) {
    auto h = webhook::make({.url = url});
    ASSERT_FALSE(h) << url;
    EXPECT_EQ(h.error().code, errc::invalid_argument) << url;
  }
  EXPECT_FALSE(webhook::make({.url = "http://h/", .timeout = std::chrono::milliseconds{0}}));
}
