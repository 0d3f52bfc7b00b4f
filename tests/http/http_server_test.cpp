// Tests of jetsource::http::server (framework/http): a real server on a free loopback port (no
// nats-server), spoken to with cpp-httplib's client and a raw socket. Routing, path parameters,
// problem responses, the body limit, a POST without Content-Length, a throwing handler, the
// observer.
#include <jetsource/http/server.hpp>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace {

namespace http = jetsource::http;

struct observed {
  std::string route, method;
  int status;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<http::server>(
        http::server_options{.port = 0,
                             .max_body_bytes = 1024,
                             .on_request = [this](std::string_view route, std::string_view method,
                                                  int status, double seconds) {
                               std::lock_guard lock(mutex_);
                               seen_.push_back({std::string(route), std::string(method), status});
                               EXPECT_GE(seconds, 0.0);
                             }});
    server_->route("GET", "/things/{id}/parts/{part}", [](const http::request& r) {
      return http::json(200, nlohmann::json{{"id", r.param("id")},
                                            {"part", r.param("part")},
                                            {"q", r.query("q").value_or("")}}
                                 .dump());
    });
    server_->route("POST", "/things", [](const http::request& r) {
      return http::json(201, nlohmann::json{{"body", r.body}, {"json", r.has_json_body()}}.dump());
    });
    server_->route("POST", "/boom", [](const http::request&) -> http::response {
      throw std::runtime_error("secret internals");
    });
    ASSERT_TRUE(server_->start());
  }
  void TearDown() override { server_->stop(); }

  httplib::Client client() { return httplib::Client("127.0.0.1", server_->port()); }

  std::unique_ptr<http::server> server_;
  std::mutex mutex_;
  std::vector<observed> seen_;
};

void expect_problem(const httplib::Result& r, int status) {
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/problem+json");
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["status"], status);
  EXPECT_EQ(j["type"], "about:blank");
  EXPECT_TRUE(j["title"].is_string());
  EXPECT_TRUE(j["detail"].is_string());
}

TEST_F(HttpServerTest, RoutesWithPathParametersAndQuery) {
  auto r = client().Get("/things/t-1/parts/p%202?q=x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(nlohmann::json::parse(r->body),
            (nlohmann::json{{"id", "t-1"}, {"part", "p 2"}, {"q", "x"}}));
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  expect_problem(client().Get("/nothing"), 404);
  expect_problem(client().Get("/things/t-1"), 404);  // a parameter is one whole segment
  auto r = client().Get("/things");
  expect_problem(r, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
}

TEST_F(HttpServerTest, BodiesUpToTheLimitAnd413Beyond) {
  auto ok = client().Post("/things", std::string(1024, 'a'), "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201);
  EXPECT_EQ(nlohmann::json::parse(ok->body)["json"], false);
  expect_problem(client().Post("/things", std::string(1025, 'a'), "application/json"), 413);
  auto after = client().Post("/things", "{}", "application/json; charset=utf-8");
  ASSERT_TRUE(after);
  EXPECT_EQ(nlohmann::json::parse(after->body)["json"], true);
}

TEST_F(HttpServerTest, APostWithoutContentLengthHasAnEmptyBody) {
  // RFC 9112: no Content-Length and no Transfer-Encoding means no body; the server must not wait
  // for more (curl -X POST sends such requests).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(server_->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{2, 0};  // the server's read timeout is 5 s: an answer within 2 s did not wait
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string request = "POST /things HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, n);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 201", 0), 0u) << answer;
}

TEST_F(HttpServerTest, AThrowingHandlerIsA500ProblemWithoutItsMessage) {
  auto r = client().Post("/boom", "", "application/json");
  expect_problem(r, 500);
  EXPECT_EQ(r->body.find("secret"), std::string::npos) << r->body;
  auto again = client().Get("/things/a/parts/b");  // still serving
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(HttpServerTest, TheObserverSeesEveryResponseWithItsRoutePattern) {
  (void)client().Get("/things/a/parts/b");
  (void)client().Get("/nothing");
  (void)client().Post("/things", std::string(2000, 'a'), "application/json");
  server_->stop();  // every response written: the observer has run for each
  // Each on its own connection, so on its own worker: the observer may see them in any order.
  std::lock_guard lock(mutex_);
  std::multiset<std::tuple<std::string, std::string, int>> got;
  for (const auto& o : seen_) got.emplace(o.route, o.method, o.status);
  EXPECT_EQ(got,
            (std::multiset<std::tuple<std::string, std::string, int>>{
                {"/things/{id}/parts/{part}", "GET", 200}, {"", "GET", 404}, {"", "POST", 413}}));
}

TEST_F(HttpServerTest, APathMatchesARouteOnlySegmentForSegment) {
  expect_problem(client().Get("/things/a/parts/b/"), 404);  // a trailing segment more
  expect_problem(client().Get("/things//parts/b"), 404);    // a parameter is never empty
  expect_problem(client().Get("/things/a/parts"), 404);
  expect_problem(client().Get("/thingsx/a/parts/b"), 404);
  auto r = client().Get("/things/a.b/parts/%7Bx%7D");  // any other text is a parameter's value
  ASSERT_TRUE(r);
  EXPECT_EQ(nlohmann::json::parse(r->body)["part"], "{x}");
}

TEST(HttpServer, AParameterThatIsNotAWholeSegmentIsRefused) {
  http::server s{{.port = 0}};
  auto h = [](const http::request&) { return http::json(200, "{}"); };
  EXPECT_THROW(s.route("GET", "/things/x-{id}", h), std::invalid_argument);
  EXPECT_NO_THROW(s.route("GET", "/things/{id}", h));
}

// cpp-httplib serves a keep-alive connection on one thread for its whole life: every open
// connection must get a thread of its own, or a connection waits until another goes idle (the
// fixed pool of 16 threads once made the 17th of 32 connections wait seconds).
TEST(HttpServer, EveryConnectionIsServedAtOnceUpToTheThreadLimit) {
  constexpr int connections = 40;
  std::mutex m;
  std::condition_variable all_in;
  int arrived = 0;
  http::server s{{.port = 0, .threads = 64}};
  s.route("GET", "/together", [&](const http::request&) {
    std::unique_lock lock(m);
    ++arrived;
    all_in.notify_all();
    // Answers 200 once every connection has a request in a handler at the same time.
    bool together =
        all_in.wait_for(lock, std::chrono::seconds{10}, [&] { return arrived >= connections; });
    return http::json(together ? 200 : 503, "{}");
  });
  ASSERT_TRUE(s.start());
  std::vector<int> statuses(connections, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < connections; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", s.port());
      c.set_read_timeout(20, 0);
      if (auto r = c.Get("/together")) statuses[i] = r->status;
    });
  for (auto& t : clients) t.join();
  s.stop();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), connections);
}

TEST(HttpServer, APortInUseIsAnError) {
  http::server first{{.port = 0}};
  ASSERT_TRUE(first.start());
  http::server second{{.port = first.port()}};
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(jetsource::errc::io)) << r.error();
}

}  // namespace
