// Tests of `order-system serve --http ADDR --react` (docs/http-api.md "Reactors"): the real binary
// against a real nats-server, spoken to with cpp-httplib's client. serve runs the inventory and
// notification reactors as one member of their groups (a paid order reaches the stock), answers
// GET /reactors and GET /reactors/dead-letters with the JSON of `reactors ... --json`, retries
// and skips parked orders over HTTP (and read models' dead letters), reports the reactors in
// /metrics, and stops them on SIGTERM.
#include <gtest/gtest.h>

#include "http_serve_fixture.hpp"
#include "promtool.hpp"
#include "webhook_sink.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <thread>

namespace jetsource::test {
namespace {

using json = nlohmann::json;

class HttpReactorsTest : public http_serve_test {
 protected:
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds{30});
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body = {}) {
    return body.empty() ? client().Post(path.c_str())
                        : client().Post(path.c_str(), body, "application/json");
  }
  httplib::Result get(const std::string& path) { return client().Get(path.c_str()); }

  // Creates, places and pays `id` (widget 2 x 250 + gadget 1 x 1000) over HTTP.
  void paid_order(const std::string& id) {
    auto c = post("/orders", fmt::format(R"({{"customer_id":"c-1","order_id":"{}","items":[
        {{"sku":"widget","qty":2,"unit_price_cents":250}},
        {{"sku":"gadget","qty":1,"unit_price_cents":1000}}]}})",
                                         id));
    ASSERT_TRUE(c);
    ASSERT_EQ(c->status, 201) << c->body;
    ASSERT_EQ(post("/orders/" + id + "/place")->status, 200);
    ASSERT_EQ(post("/orders/" + id + "/pay", R"({"amount_cents":1500})")->status, 200);
  }

  // GET `path` until `pred` holds on its JSON (up to 30 s).
  template <class Pred>
  json get_until(const std::string& path, Pred pred) {
    json j;
    for (int i = 0; i < 300; ++i) {
      auto r = get(path);
      if (r && r->status == 200) {
        j = json_of(r->body);
        if (pred(j)) return j;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    ADD_FAILURE() << path << ": the condition never held; last: " << j.dump();
    return j;
  }
};

// A problem+json response with that status; returns its detail.
std::string expect_problem(const httplib::Result& r, int status) {
  EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  if (!r) return {};
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/problem+json");
  auto j = json::parse(r->body, nullptr, false);
  EXPECT_TRUE(j.is_object()) << r->body;
  return j.is_object() ? j.value("detail", std::string{}) : std::string{};
}

// serve --react runs the inventory reactor: a paid order reaches the stock; GET /reactors is
// what `reactors status --json` prints (same shape; same values once the group is settled).
TEST_F(HttpReactorsTest, APaidOrderReachesTheStockThroughServesReactor) {
  start_serve({"--react", "--instance", "serve-1", "--lease-ms", "1500"});
  paid_order("o-1");
  auto stock = query_until({"query", "stock", "widget", "--json"},
                           [](const json& j) { return j.value("sold", 0) == 2; });
  EXPECT_EQ(stock["sold"], 2);
  EXPECT_EQ(json_of(run({"query", "stock", "gadget", "--json"}).out)["sold"], 1);

  auto reactors = get_until("/reactors", [](const json& j) {
    return j.is_array() && j.size() == 2 && j[0]["state"] == "started" &&
           j[0]["members"].size() == 1 && j[0]["pending"] == 0 &&
           j[0]["members"][0]["partitions"] == 64;  // its record is renewed every lease/3
  });
  ASSERT_EQ(reactors.size(), 2u);
  EXPECT_EQ(reactors[0]["reactor"], "inventory");
  EXPECT_EQ(reactors[0]["mode"], "ordered");
  EXPECT_EQ(reactors[0]["members"][0]["instance"], "serve-1");
  EXPECT_EQ(reactors[0]["members"][0]["partitions"], 64);
  EXPECT_EQ(reactors[1]["reactor"], "notifications");
  EXPECT_EQ(reactors[1]["state"], "never started");  // no --webhook: it does not run
  // The CLI's JSON: same keys, and the same document once nothing moves between the two reads.
  json cli;
  for (int i = 0; i < 50; ++i) {
    auto http = get("/reactors");
    auto r = run({"reactors", "status", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    cli = json_of(r.out);
    if (http && json_of(http->body) == cli) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  EXPECT_EQ(json_of(get("/reactors")->body), cli);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(keys_of(reactors[i]), keys_of(cli[i]));

  // SIGTERM stops the reactors too (each hands its partitions over), exit 0.
  auto o = stop_serve();
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("stopping the reactors"), std::string::npos) << o.err;
  auto after = json_of(run({"reactors", "status", "--json"}).out);
  EXPECT_TRUE(after[0]["members"].empty()) << after.dump();
}

// A failing webhook parks an order; GET /reactors/dead-letters lists it as the CLI does; POST
// .../retry delivers it after the fix, POST .../skip moves on; bad requests are problems.
TEST_F(HttpReactorsTest, DeadLettersRetryAndSkipOverHttp) {
  webhook_sink sink;
  sink.fail_order("o-bad", webhook_sink::failure::status_500);
  sink.fail_order("o-skip", webhook_sink::failure::status_500);
  start_serve({"--react", "--webhook", sink.url(), "--lease-ms", "1500"});
  for (const char* id : {"o-bad", "o-skip", "o-good"}) {
    ASSERT_EQ(
        post("/orders", fmt::format(R"({{"customer_id":"c-1","order_id":"{}"}})", id))->status,
        201);
    ASSERT_EQ(
        post(fmt::format("/orders/{}/items", id), R"({"sku":"bolt","qty":1,"unit_price_cents":10})")
            ->status,
        200);
    ASSERT_EQ(post(fmt::format("/orders/{}/place", id))->status, 200);
  }
  auto parked = get_until("/reactors/dead-letters", [](const json& j) { return j.size() == 2; });
  ASSERT_EQ(parked.size(), 2u);
  auto cli = run({"reactors", "dead-letters", "--json"});
  ASSERT_EQ(cli.code, 0) << cli.err;
  EXPECT_EQ(parked, json_of(cli.out));  // the same document
  for (const auto& p : parked) {
    EXPECT_EQ(p["reactor"], "notifications");
    EXPECT_EQ(p["event_type"], "OrderPlaced");
  }
  EXPECT_EQ(json_of(get("/reactors/dead-letters?name=notifications")->body), parked);
  EXPECT_EQ(json_of(get("/reactors/dead-letters?name=inventory")->body), json::array());
  auto status = json_of(get("/reactors")->body);
  EXPECT_EQ(status[1]["dead_letters"], 2);
  EXPECT_EQ(status[1]["parked"].size(), 2u);

  // Errors: unknown reactor 404, bad id 400, an order that is not parked 404, a bad wait 400.
  expect_problem(get("/reactors/dead-letters?name=nope"), 404);
  expect_problem(post("/reactors/nope/retry/o-bad"), 404);
  expect_problem(post("/reactors/nope/skip/o-bad"), 404);
  expect_problem(post("/reactors/notifications/retry/o*bad"), 400);
  expect_problem(post("/reactors/notifications/skip/o.bad"), 400);
  auto not_parked = expect_problem(post("/reactors/notifications/retry/o-good"), 404);
  EXPECT_NE(not_parked.find("not parked"), std::string::npos) << not_parked;
  expect_problem(post("/reactors/notifications/retry/o-bad?wait_ms=soon"), 400);
  expect_problem(get("/reactors/notifications/retry/o-bad"), 405);

  // Fixed: retry delivers o-bad's OrderPlaced (the member in serve did it before answering).
  sink.fail_order("o-bad", webhook_sink::failure::none);
  auto retried = post("/reactors/notifications/retry/o-bad");
  ASSERT_TRUE(retried);
  ASSERT_EQ(retried->status, 200) << retried->body;
  EXPECT_EQ(json_of(retried->body), json({{"reactor", "notifications"},
                                          {"action", "retry"},
                                          {"aggregate_type", "Order"},
                                          {"aggregate_id", "o-bad"},
                                          {"done", true}}));
  bool delivered = false;
  for (const auto& r : sink.delivered())
    delivered = delivered || (r.order_id == "o-bad" && r.event == "OrderPlaced");
  EXPECT_TRUE(delivered);

  // Skip: o-skip's OrderPlaced counts as handled without a delivery.
  auto skipped = post("/reactors/notifications/skip/o-skip");
  ASSERT_TRUE(skipped);
  ASSERT_EQ(skipped->status, 200) << skipped->body;
  EXPECT_EQ(json_of(skipped->body)["action"], "skip");
  for (const auto& r : sink.delivered()) EXPECT_NE(r.order_id, "o-skip");
  EXPECT_EQ(json_of(get("/reactors/dead-letters")->body), json::array());
  expect_problem(post("/reactors/notifications/skip/o-skip"), 404);  // not parked any more
}

// The read models' dead letters are retried and skipped over HTTP as with `projections
// retry|skip --json`. Two orders of 5e18 paid by one customer overflow customer_stats' sum.
TEST_F(HttpReactorsTest, ReadModelDeadLettersRetryAndSkipOverHttp) {
  start_serve();
  for (const char* id : {"o-4", "o-5"}) {
    ASSERT_EQ(post("/orders", fmt::format(R"({{"customer_id":"c-big","order_id":"{}","items":[
                     {{"sku":"big","qty":1,"unit_price_cents":5000000000000000000}}]}})",
                                          id))
                  ->status,
              201);
    ASSERT_EQ(post(fmt::format("/orders/{}/place", id))->status, 200);
    ASSERT_EQ(
        post(fmt::format("/orders/{}/pay", id), R"({"amount_cents":5000000000000000000})")->status,
        200);
  }
  get_until("/projections", [](const json& list) {
    for (const auto& m : list)
      if (m["name"] == "customer_stats") return m["dead_letters"] == 1;
    return false;
  });
  expect_problem(post("/projections/nope/retry/o-5"), 404);
  expect_problem(post("/projections/customer_stats/retry/o*5"), 400);
  expect_problem(post("/projections/customer_stats/skip/o-4"), 404);  // no dead letters
  // A retry fails again (the sum still overflows): still dead-lettered.
  auto retried = post("/projections/customer_stats/retry/o-5");
  ASSERT_TRUE(retried);
  ASSERT_EQ(retried->status, 200) << retried->body;
  auto r = json_of(retried->body);
  std::vector<std::string> keys;  // in the order the CLI prints them
  const auto ordered = nlohmann::ordered_json::parse(retried->body);
  for (const auto& [k, v] : ordered.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"projection", "action", "aggregate_type",
                                            "aggregate_id", "by", "remaining", "dead_letters"}));
  EXPECT_EQ(r["by"], "the running serve");
  EXPECT_EQ(r["remaining"], 1);
  EXPECT_EQ(r["dead_letters"].size(), 1u);
  auto skipped = post("/projections/customer_stats/skip/o-5");
  ASSERT_TRUE(skipped);
  ASSERT_EQ(skipped->status, 200) << skipped->body;
  EXPECT_EQ(json_of(skipped->body)["remaining"], 0);
  EXPECT_EQ(json_of(skipped->body)["dead_letters"], json::array());
}

// /metrics carries the reactors' series (label reactor=...), valid for promtool.
TEST_F(HttpReactorsTest, MetricsExposeTheReactors) {
  start_serve({"--react", "--lease-ms", "1500"});
  paid_order("o-1");
  query_until({"query", "stock", "widget", "--json"},
              [](const json& j) { return j.value("sold", 0) == 2; });
  auto metrics = get("/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  const auto& text = metrics->body;
  auto check = promtool({"check", "metrics"}, text);
  EXPECT_EQ(check.status, 0) << check.output << "\n" << text;
  for (
      const char* series : {
          R"(jetsource_reactor_handled_total{reactor="inventory"} 1)",
          R"(jetsource_reactor_retries_total{reactor="inventory"} 0)",
          R"(jetsource_reactor_parked{reactor="inventory"} 0)",
          R"(jetsource_reactor_dead_letters{reactor="inventory"} 0)",
          R"(jetsource_reactor_partitions{reactor="inventory"} 64)",
          R"(jetsource_reactor_lag_events{reactor="inventory"})",
          R"(jetsource_reactor_lag_seconds{reactor="inventory"})",
          R"(jetsource_reactor_position{reactor="inventory"})",
          R"(jetsource_http_requests_total{route="/orders/{id}/pay",method="POST",status="200"} 1)",
      })
    EXPECT_NE(text.find(series), std::string::npos) << series << " not in:\n" << text;
}

// serve's reactor options go with --react; a bad webhook URL fails before any I/O.
TEST_F(HttpReactorsTest, ReactorOptionsNeedReactAndAreChecked) {
  EXPECT_EQ(run_offline({"serve", "--http", "127.0.0.1:0", "--webhook", "http://x/y"}).code, 2);
  EXPECT_EQ(run_offline({"serve", "--instance", "a"}).code, 2);
  EXPECT_EQ(run_offline({"serve", "--react", "--instance", "a.b"}).code, 2);
  EXPECT_EQ(run_offline({"serve", "--react", "--webhook", "ftp://x/y"}).code, 2);
}

}  // namespace
}  // namespace jetsource::test
