// Tests of the order-system's HTTP API (`order-system serve --http`, docs/http-api.md): the real
// binary against a real nats-server, spoken to with cpp-httplib's client (and a raw socket for
// clients that misbehave). Every route, every error status, idempotent retries, read-your-writes,
// concurrency, disconnecting clients and a graceful stop.
#include <gtest/gtest.h>

#include "http_serve_fixture.hpp"
#include "promtool.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <regex>
#include <set>

namespace jetsource::test {
namespace {

using json = nlohmann::json;

class HttpApiTest : public http_serve_test {
 protected:
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds{30});
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    return client().Post(path.c_str(), headers, body, "application/json");
  }
  httplib::Result get(const std::string& path) { return client().Get(path.c_str()); }

  // Creates o-1 for c-1: widget 2 x 250, gadget 1 x 1000 (total 1500); returns its sequence.
  std::uint64_t create_o1() {
    auto r = post("/orders", R"({"customer_id":"c-1","order_id":"o-1","items":[
        {"sku":"widget","qty":2,"unit_price_cents":250},
        {"sku":"gadget","qty":1,"unit_price_cents":1000}]})");
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_EQ(r->status, 201) << r->body;
    auto j = json_of(r->body);
    EXPECT_EQ(keys_of(j), (std::vector<std::string>{"order_id", "sequence"}));
    EXPECT_EQ(j["order_id"], "o-1");
    return j.value("sequence", std::uint64_t{0});
  }
};

// A problem+json response with that status (RFC 9457 members); returns its detail.
std::string expect_problem(const httplib::Result& r, int status) {
  EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  if (!r) return {};
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/problem+json");
  auto j = json::parse(r->body, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r->body;
  if (!j.is_object()) return {};
  EXPECT_EQ(keys_of(j), (std::vector<std::string>{"detail", "status", "title", "type"}));
  EXPECT_EQ(j["status"], status);
  return j.value("detail", std::string{});
}

std::uint64_t sequence_of(const httplib::Result& r, int status = 200) {
  EXPECT_TRUE(r) << httplib::to_string(r.error());
  if (!r) return 0;
  EXPECT_EQ(r->status, status) << r->body;
  return json_of(r->body).value("sequence", std::uint64_t{0});
}

// A TCP connection to the server that sends what the test says, raw.
int raw_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    auto n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

TEST_F(HttpApiTest, EveryCommandRouteAnswersItsSequence) {
  start_serve();
  auto created = create_o1();
  ASSERT_GT(created, 0u);
  auto added =
      sequence_of(post("/orders/o-1/items", R"({"sku":"bolt","qty":3,"unit_price_cents":10})"));
  EXPECT_GT(added, created);
  auto removed = sequence_of(client().Delete("/orders/o-1/items/bolt"));
  EXPECT_GT(removed, added);
  auto placed = sequence_of(client().Post("/orders/o-1/place"));
  EXPECT_GT(placed, removed);
  auto paid = sequence_of(post("/orders/o-1/pay", R"({"amount_cents":1500})"));
  EXPECT_GT(paid, placed);
  auto shipped = sequence_of(client().Post("/orders/o-1/ship"));
  EXPECT_GT(shipped, paid);
  EXPECT_EQ(shipped, commits());
  EXPECT_EQ(load("o-1").state.status(), order_system::order_status::shipped);

  // cancel, with and without a reason; a generated order id.
  auto generated = post("/orders", R"({"customer_id":"c-2"})");
  ASSERT_TRUE(generated);
  ASSERT_EQ(generated->status, 201) << generated->body;
  auto id = json_of(generated->body)["order_id"].get<std::string>();
  EXPECT_EQ(id.rfind("ord-", 0), 0u);
  EXPECT_GT(sequence_of(post("/orders/" + id + "/cancel", R"({"reason":"changed my mind"})")), 0u);
  ASSERT_EQ(post("/orders", R"({"customer_id":"c-2","order_id":"o-3"})")->status, 201);
  EXPECT_GT(sequence_of(client().Post("/orders/o-3/cancel")), 0u);
  EXPECT_EQ(load("o-3").state.status(), order_system::order_status::cancelled);
}

TEST_F(HttpApiTest, QueriesAnswerWhatTheCliPrints) {
  start_serve();
  create_o1();
  sequence_of(client().Post("/orders/o-1/place"));
  auto paid = sequence_of(post("/orders/o-1/pay", R"({"amount_cents":1500})"));
  // Read-your-writes: each read model has applied the payment before answering.
  auto q = "?min_sequence=" + std::to_string(paid);
  for (auto [path, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"/orders/o-1", {"query", "order", "o-1", "--json"}},
           {"/customers/c-1", {"query", "customer", "c-1", "--json"}},
           {"/products/widget", {"query", "product", "widget", "--json"}}}) {
    auto r = get(path + q);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    auto cli = run(args);
    ASSERT_EQ(cli.code, 0) << cli.err;
    EXPECT_EQ(r->body + "\n", cli.out) << path;  // byte for byte
  }
  auto order = json_of(get("/orders/o-1")->body);
  EXPECT_EQ(order["status"], "paid");
  EXPECT_EQ(order["total_cents"], 1500);

  auto projections = get("/projections");
  ASSERT_TRUE(projections);
  EXPECT_EQ(projections->status, 200);
  auto list = json_of(projections->body);
  ASSERT_EQ(list.size(), 3u);
  auto cli = json_of(run({"projections", "status", "--json"}).out);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(list[i]["name"], cli[i]["name"]);
    EXPECT_EQ(keys_of(list[i]), keys_of(cli[i]));  // the same shape
  }
}

TEST_F(HttpApiTest, OperationsRoutes) {
  start_serve();
  auto health = get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
}

// GET /metrics is the process's Prometheus exposition: valid for promtool, and it carries the
// commands, the read models and the HTTP requests this serve answered.
TEST_F(HttpApiTest, MetricsExposeCommandsReadModelsAndRequests) {
  start_serve();
  create_o1();
  auto bad = post("/orders/o-1/pay", R"({"amount_cents":1})");  // not placed yet: rejected
  ASSERT_TRUE(bad);
  ASSERT_EQ(bad->status, 409) << bad->body;
  ASSERT_TRUE(get("/orders/o-1?min_sequence=1"));
  auto metrics = get("/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto& text = metrics->body;
  auto check = promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
  for (const char* series :
       {R"(jetsource_commands_total{aggregate="Order",outcome="appended"} 1)",
        R"(jetsource_commands_total{aggregate="Order",outcome="rejected"} 1)",
        R"(jetsource_http_requests_total{route="/orders",method="POST",status="201"} 1)",
        R"(jetsource_http_requests_total{route="/orders/{id}/pay",method="POST",status="409"} 1)",
        R"(jetsource_projection_events_applied_total{projection="order_summary"})",
        R"(jetsource_projection_lag_events{projection="customer_stats"})",
        "jetsource_append_duration_seconds_count", "jetsource_nats_reconnects_total"})
    EXPECT_NE(text.find(series), std::string::npos) << series << " not in:\n" << text;
}

TEST_F(HttpApiTest, BadRequestsAreProblemsAndStoreNothing) {
  start_serve();
  create_o1();
  auto before = commits();
  expect_problem(post("/orders", "{\"customer_id\":"), 400);         // bad JSON
  expect_problem(post("/orders", "[1,2]"), 400);                     // not an object
  expect_problem(post("/orders", R"({"customer_id":7})"), 400);      // wrong type
  expect_problem(post("/orders", R"({})"), 400);                     // missing field
  expect_problem(post("/orders", R"({"customer_id":"c.1"})"), 400);  // invalid id
  expect_problem(post("/orders", R"({"customer_id":"c-1","order_id":"a b"})"), 400);
  expect_problem(post("/orders", R"({"customer_id":"c-1","items":{}})"), 400);
  auto qty =
      expect_problem(post("/orders/o-1/items", R"({"sku":"x","qty":0,"unit_price_cents":1})"), 400);
  EXPECT_NE(qty.find("quantity"), std::string::npos) << qty;
  expect_problem(post("/orders/o-1/items", R"({"sku":"x","qty":"2","unit_price_cents":1})"), 400);
  expect_problem(post("/orders/o-1/items", R"({"sku":"x","qty":1.5,"unit_price_cents":1})"), 400);
  expect_problem(post("/orders/o-1/items", R"({"sku":"x","qty":1,"unit_price_cents":-1})"), 400);
  expect_problem(
      post("/orders/o-1/items", R"({"sku":"x","qty":99999999999999999999,"unit_price_cents":1})"),
      400);
  expect_problem(post("/orders/o-1/pay", R"({"amount_cents":null})"), 400);
  expect_problem(post("/orders", R"({"customer_id":"c-1"})", {{"Idempotency-Key", "a b"}}), 400);
  expect_problem(client().Post("/orders/o*1/place"), 400);  // an invalid id in the path
  expect_problem(get("/orders/o-1?min_sequence=abc"), 400);
  // Wrong content type.
  auto text = client().Post("/orders", R"({"customer_id":"c-1"})", "text/plain");
  expect_problem(text, 415);
  // Too large: 2 MiB (the limit is 64 KiB).
  std::string huge = R"({"customer_id":"c-1","pad":")" + std::string(2 << 20, 'x') + "\"}";
  expect_problem(post("/orders", huge), 413);
  EXPECT_EQ(commits(), before);  // nothing stored
}

TEST_F(HttpApiTest, NotFoundRejectedAndWrongMethod) {
  start_serve();
  create_o1();
  expect_problem(get("/nothing/here"), 404);
  expect_problem(get("/orders/o-9"), 404);
  expect_problem(get("/customers/c-9"), 404);
  expect_problem(get("/products/nothing"), 404);
  expect_problem(client().Post("/orders/o-9/place"), 404);             // no such order
  auto rule = expect_problem(client().Post("/orders/o-1/ship"), 409);  // a draft is not paid
  EXPECT_NE(rule.find("only a paid order can be shipped"), std::string::npos) << rule;
  expect_problem(post("/orders/o-1/pay", R"({"amount_cents":1})"), 409);
  auto r = get("/orders/o-1/place");
  expect_problem(r, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
}

TEST_F(HttpApiTest, AnIdempotentRetryLandsOnceWithTheSameSequence) {
  start_serve();
  httplib::Headers key{{"Idempotency-Key", "create-7f3a"}};
  auto first =
      post("/orders", R"({"customer_id":"c-1","items":[{"sku":"w","qty":1,"unit_price_cents":5}]})",
           key);
  auto after_first = commits();
  auto again =
      post("/orders", R"({"customer_id":"c-1","items":[{"sku":"w","qty":1,"unit_price_cents":5}]})",
           key);
  ASSERT_TRUE(first && again);
  EXPECT_EQ(again->status, 201) << again->body;
  EXPECT_EQ(first->body, again->body);  // same order id, same sequence
  EXPECT_EQ(commits(), after_first);
  auto id = json_of(first->body)["order_id"].get<std::string>();

  // A retried add-item (accepted again: the stream's duplicate check) and a retried pay (the
  // state now refuses a second one: the commit carrying the key answers).
  httplib::Headers add_key{{"Idempotency-Key", "add-1"}};
  auto added = sequence_of(
      post("/orders/" + id + "/items", R"({"sku":"w","qty":1,"unit_price_cents":5})", add_key));
  EXPECT_EQ(sequence_of(post("/orders/" + id + "/items",
                             R"({"sku":"w","qty":1,"unit_price_cents":5})", add_key)),
            added);
  sequence_of(client().Post(("/orders/" + id + "/place").c_str()));
  httplib::Headers pay_key{{"Idempotency-Key", "pay-1"}};
  auto paid = sequence_of(post("/orders/" + id + "/pay", R"({"amount_cents":10})", pay_key));
  auto after_pay = commits();
  EXPECT_EQ(sequence_of(post("/orders/" + id + "/pay", R"({"amount_cents":10})", pay_key)), paid);
  EXPECT_EQ(commits(), after_pay);
  auto lines = load(id).state.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].qty, 2);  // 1 at create + 1 added once
}

TEST_F(HttpApiTest, MinSequenceWaitsForTheReadModelOr504) {
  start_serve();
  auto created = create_o1();
  // No polling: the query itself waits until order_summary has applied the create.
  auto r = get("/orders/o-1?min_sequence=" + std::to_string(created));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json_of(r->body)["order_id"], "o-1");
  // A sequence not written yet: 504 after wait_ms.
  auto start = std::chrono::steady_clock::now();
  auto late = get("/orders/o-1?min_sequence=" + std::to_string(created + 1000) + "&wait_ms=300");
  auto waited = std::chrono::steady_clock::now() - start;
  auto detail = expect_problem(late, 504);
  EXPECT_NE(detail.find("order_summary"), std::string::npos) << detail;
  EXPECT_GE(waited, std::chrono::milliseconds{300});
}

TEST_F(HttpApiTest, ConcurrentPostsOnOneOrderAllSucceed) {
  start_serve();
  create_o1();
  constexpr int writers = 12;
  std::vector<std::future<std::pair<int, std::uint64_t>>> posts;
  for (int i = 0; i < writers; ++i)
    posts.push_back(std::async(std::launch::async, [this, i] {
      auto r = post("/orders/o-1/items",
                    fmt::format(R"({{"sku":"sku-{}","qty":1,"unit_price_cents":100}})", i));
      if (!r) return std::pair<int, std::uint64_t>{-1, 0};
      return std::pair{r->status, json_of(r->body).value("sequence", std::uint64_t{0})};
    }));
  std::set<std::uint64_t> sequences;
  for (auto& p : posts) {
    auto [status, seq] = p.get();
    EXPECT_EQ(status, 200);
    sequences.insert(seq);
  }
  EXPECT_EQ(sequences.size(), static_cast<std::size_t>(writers));  // one commit each
  EXPECT_EQ(load("o-1").state.lines().size(), 2u + writers);
}

TEST_F(HttpApiTest, AClientThatDisconnectsMidRequestLeavesTheServerAnswering) {
  start_serve();
  // Headers and half a body, then gone.
  int half = raw_connect(port_);
  send_all(half,
           "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 100\r\n\r\n{\"customer_id\":");
  ::close(half);
  // Half a request line, then gone.
  int line = raw_connect(port_);
  send_all(line, "GET /heal");
  ::close(line);
  // A whole request, gone before the response.
  int whole = raw_connect(port_);
  send_all(whole,
           "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 20\r\n\r\n{\"customer_id\":\"c\"}");
  ::close(whole);
  auto r = get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GT(create_o1(), 0u);
}

TEST_F(HttpApiTest, StoreUnavailableIs503) {
  start_serve();
  create_o1();
  ASSERT_TRUE(server_->stop());
  // Queries still read the read models; commands and readiness say the store is away.
  auto detail = expect_problem(client().Post("/orders/o-1/place"), 503);
  EXPECT_NE(detail.find("NATS"), std::string::npos) << detail;
  expect_problem(get("/readyz"), 503);
  auto health = get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);  // the process is up
  auto order = get("/orders/o-1");
  ASSERT_TRUE(order);
  EXPECT_NE(order->status, 500);
}

TEST_F(HttpApiTest, SigtermFinishesTheRequestInFlight) {
  start_serve();
  auto created = create_o1();
  // One keep-alive connection, already being served by a worker (its first answer came back),
  // then a query on it that waits for a sequence nobody writes: in flight ~1.5 s, then a 504.
  auto c = client();
  c.set_keep_alive(true);
  ASSERT_EQ(c.Get("/healthz")->status, 200);
  auto in_flight = std::async(std::launch::async, [&] {
    return c.Get(
        ("/orders/o-1?min_sequence=" + std::to_string(created + 1) + "&wait_ms=1500").c_str());
  });
  // Time for the request to cross the loopback (if it did not, the test fails: a request the
  // stopping server never read is closed unanswered).
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  ASSERT_EQ(::kill(serve_, SIGTERM), 0);
  auto r = in_flight.get();
  expect_problem(r, 504);  // answered, not cut off
  auto o = wait(serve_);
  serve_ = -1;
  EXPECT_EQ(o.code, 0) << o.err;
}

}  // namespace
}  // namespace jetsource::test
