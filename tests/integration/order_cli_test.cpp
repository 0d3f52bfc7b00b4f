// The order-system command line end to end: the real binary (ORDER_SYSTEM_BIN) against a real
// nats-server: exit codes, `order create` output, bad input, concurrent writers to one order.
#include <jetsource/projector.hpp>
#include <jetsource/repository.hpp>

#include <nlohmann/json.hpp>

#include <order_system/order.hpp>
#include <order_system/stream.hpp>

#include "order_cli_fixture.hpp"

#include <sys/file.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace order_system;

namespace {

using jetsource::test::json_of;
using jetsource::test::keys_of;
using jetsource::test::outcome;

class OrderCliTest : public jetsource::test::order_cli_test {};

TEST_F(OrderCliTest, CreatePrintsOnlyTheGeneratedOrderId) {
  auto r = run({"order", "create", "--customer", "c-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, std::regex("ord-[0-9a-f]{16}\n"))) << r.out;
  EXPECT_EQ(r.err, "");
  auto id = r.out.substr(0, r.out.size() - 1);
  auto l = load(id);
  EXPECT_EQ(l.version, 1u);
  EXPECT_EQ(l.state.status(), order_status::draft);
  EXPECT_EQ(l.state.customer_id(), "c-1");

  auto other = run({"order", "create", "--customer", "c-1"});
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_NE(other.out, r.out);
}

TEST_F(OrderCliTest, CreateWithItemsIsOneCommit) {
  auto r = run({"order", "create", "--customer", "c-1", "--order-id", "o-1", "--item",
                "widget:2:250", "--item", "gadget:1:1000", "--item", "widget:1:250"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "o-1\n");
  auto log = store().read("Order", "o-1");
  ASSERT_TRUE(log) << log.error();
  ASSERT_EQ(log->commits.size(), 1u);
  EXPECT_EQ(log->commits[0].event_types, "OrderCreated,ItemAdded,ItemAdded,ItemAdded");
  auto l = load("o-1");
  EXPECT_EQ(l.version, 4u);
  ASSERT_EQ(l.state.lines().size(), 2u);
  EXPECT_EQ(l.state.find("widget")->qty, 3);
  EXPECT_EQ(l.state.total_cents(), 1750);
}

TEST_F(OrderCliTest, AnOrderLivesThroughItsStates) {
  create_sample();
  EXPECT_EQ(
      run({"order", "add-item", "o-1", "--sku", "bolt", "--qty", "4", "--unit-price-cents", "5"})
          .code,
      0);
  EXPECT_EQ(run({"order", "remove-item", "o-1", "--sku", "gadget"}).code, 0);
  EXPECT_EQ(run({"order", "place", "o-1"}).code, 0);
  EXPECT_EQ(run({"order", "pay", "o-1", "--amount-cents", "520"}).code, 0);
  auto shipped = run({"order", "ship", "o-1"});
  EXPECT_EQ(shipped.code, 0) << shipped.err;
  EXPECT_EQ(shipped.out, "");  // only create prints
  auto l = load("o-1");
  EXPECT_EQ(l.state.status(), order_status::shipped);
  EXPECT_EQ(l.state.total_cents(), 520);
  EXPECT_EQ(l.version, 8u);  // created, 2 added, added, removed, placed, paid, shipped

  auto cancelled = run({"order", "create", "--customer", "c-2", "--order-id", "o-2"});
  ASSERT_EQ(cancelled.code, 0);
  EXPECT_EQ(run({"order", "cancel", "o-2", "--reason", "no longer needed"}).code, 0);
  EXPECT_EQ(load("o-2").state.status(), order_status::cancelled);
}

TEST_F(OrderCliTest, StateRulesExitWith3AndSayWhich) {
  create_sample();
  auto before = commits();
  struct expectation {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<expectation> cases{
      {{"order", "create", "--customer", "c-9", "--order-id", "o-1"}, "already exists"},
      {{"order", "add-item", "o-1", "--sku", "widget", "--qty", "1", "--unit-price-cents", "999"},
       "widget is on the order at 250 cents, not 999"},
      {{"order", "remove-item", "o-1", "--sku", "bolt"}, "bolt is not on the order"},
      {{"order", "pay", "o-1", "--amount-cents", "1500"}, "only a placed order can be paid"},
      {{"order", "ship", "o-1"}, "only a paid order can be shipped"},
  };
  for (const auto& c : cases) {
    auto r = run(c.args);
    EXPECT_EQ(r.code, 3) << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("o-1"), std::string::npos) << r.err;
  }
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);
  EXPECT_EQ(run({"order", "place", "o-1"}).code, 3);
  auto wrong = run({"order", "pay", "o-1", "--amount-cents", "1499"});
  EXPECT_EQ(wrong.code, 3);
  EXPECT_NE(wrong.err.find("the order total is 1500 cents, not 1499"), std::string::npos)
      << wrong.err;
  ASSERT_EQ(run({"order", "pay", "o-1", "--amount-cents", "1500"}).code, 0);
  auto cancel = run({"order", "cancel", "o-1"});
  EXPECT_EQ(cancel.code, 3);
  EXPECT_NE(cancel.err.find("the order is paid: only a draft or placed order can be cancelled"),
            std::string::npos)
      << cancel.err;
  EXPECT_EQ(commits(), before + 2);  // only place and pay were written
}

TEST_F(OrderCliTest, CommandsOnAnUnknownOrderExitWith4) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"order", "add-item", "nope", "--sku", "w", "--qty", "1", "--unit-price-cents", "1"},
           {"order", "remove-item", "nope", "--sku", "w"},
           {"order", "place", "nope"},
           {"order", "pay", "nope", "--amount-cents", "0"},
           {"order", "ship", "nope"},
           {"order", "cancel", "nope"}}) {
    auto r = run(args);
    EXPECT_EQ(r.code, 4) << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find("order nope: no such order"), std::string::npos) << r.err;
  }
  EXPECT_EQ(commits(), 0u);
}

TEST_F(OrderCliTest, BadUsageAndInvalidArgumentsExitWith2BeforeAnyIo) {
  // Run against a URL where nothing listens: connecting would exit with 1, not 2.
  std::vector<std::vector<std::string>> cases{
      {},
      {"order"},
      {"order", "frobnicate", "o-1"},
      {"order", "create"},                       // --customer is required
      {"order", "create", "--customer", "c 1"},  // not a subject token
      {"order", "create", "--customer", "c-1", "--order-id", "o.1"},
      {"order", "create", "--customer", "c-1", "--item", "widget:2"},
      {"order", "create", "--customer", "c-1", "--item", "widget:two:250"},
      {"order", "create", "--customer", "c-1", "--item", "widget:2:2.50"},
      {"order", "create", "--customer", "c-1", "--item", ":2:250"},
      {"order", "create", "--customer", "c-1", "--item", "widget:0:250"},
      {"order", "create", "--customer", "c-1", "--item", "widget:1:-1"},
      {"order", "add-item", "o*1", "--sku", "w", "--qty", "1", "--unit-price-cents", "1"},
      {"order", "add-item", "o-1", "--sku", "w", "--qty", "abc", "--unit-price-cents", "1"},
      {"order", "add-item", "o-1", "--sku", "w", "--qty", "0", "--unit-price-cents", "1"},
      {"order", "add-item", "o-1", "--sku", "w", "--qty=-2", "--unit-price-cents", "1"},
      {"order", "add-item", "o-1", "--sku", "w", "--qty", "1", "--unit-price-cents=-1"},
      {"order", "add-item", "o-1", "--sku", "w", "--qty", "1"},  // price is required
      {"order", "add-item", "o-1", "--sku", "w", "--qty", "99999999999999999999",
       "--unit-price-cents", "1"},
      {"order", "remove-item", "o-1"},
      {"order", "pay", "o-1", "--amount-cents", "ten"},
      {"order", "pay", "o-1", "--amount-cents=-5"},
      {"order", "place"},
  };
  for (const auto& args : cases) {
    auto r = run_offline(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << "-> " << r.err;
    EXPECT_FALSE(r.err.empty()) << line;
  }
}

TEST_F(OrderCliTest, InfrastructureFailuresExitWith1) {
  auto r = run_offline({"order", "place", "o-1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot connect to nats://127.0.0.1:1"), std::string::npos) << r.err;

  // The server goes away after the order exists.
  create_sample();
  store_.reset();
  conn_.reset();
  ASSERT_TRUE(server_->stop());
  auto down = run({"order", "place", "o-1"});
  EXPECT_EQ(down.code, 1) << down.err;
  EXPECT_NE(down.err.find("cannot connect"), std::string::npos) << down.err;
}

TEST_F(OrderCliTest, HelpExitsWith0) {
  auto r = run_offline({"order", "create", "--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--customer"), std::string::npos) << r.out;
}

TEST_F(OrderCliTest, ConcurrentProcessesAddDifferentSkusToOneOrder) {
  ASSERT_EQ(run({"order", "create", "--customer", "c-1", "--order-id", "hot"}).code, 0);
  constexpr int writers = 8;
  std::vector<pid_t> pids;
  for (int i = 0; i < writers; ++i)
    pids.push_back(spawn({"order", "add-item", "hot", "--sku", "sku-" + std::to_string(i), "--qty",
                          std::to_string(i + 1), "--unit-price-cents", std::to_string(100 * i)},
                         server_->url()));
  for (auto pid : pids) {
    auto r = wait(pid);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  auto l = load("hot");
  EXPECT_EQ(l.version, 1u + writers);
  ASSERT_EQ(l.state.lines().size(), std::size_t{writers});
  for (int i = 0; i < writers; ++i) {
    auto line = l.state.find("sku-" + std::to_string(i));
    ASSERT_NE(line, nullptr) << "sku-" << i;
    EXPECT_EQ(line->qty, i + 1);
    EXPECT_EQ(line->unit_price_cents, 100 * i);
  }
  EXPECT_EQ(commits(), 1u + writers);  // one commit each, none doubled
}

TEST_F(OrderCliTest, ConcurrentProcessesAddTheSameSkuToOneOrder) {
  ASSERT_EQ(run({"order", "create", "--customer", "c-1", "--order-id", "hot"}).code, 0);
  constexpr int writers = 8;
  std::vector<pid_t> pids;
  for (int i = 0; i < writers; ++i)
    pids.push_back(spawn(
        {"order", "add-item", "hot", "--sku", "widget", "--qty", "1", "--unit-price-cents", "250"},
        server_->url()));
  for (auto pid : pids) {
    auto r = wait(pid);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  auto l = load("hot");
  ASSERT_EQ(l.state.lines().size(), 1u);
  EXPECT_EQ(l.state.lines()[0].qty, writers);
  EXPECT_EQ(l.state.total_cents(), 250 * writers);
  EXPECT_EQ(commits(), 1u + writers);
}

TEST_F(OrderCliTest, EmbeddedServerStoreIsUsedByOneProcessAtATime) {
  // Without --nats-url each process needs the embedded server on <data-dir>/nats: concurrent
  // processes take turns owning the store instead of starting two servers on it.
  auto created = wait(spawn({"order", "create", "--customer", "c-1", "--order-id", "emb"}, ""));
  ASSERT_EQ(created.code, 0) << created.err;
  constexpr int writers = 4;
  std::vector<pid_t> pids;
  for (int i = 0; i < writers; ++i)
    pids.push_back(spawn({"order", "add-item", "emb", "--sku", "sku-" + std::to_string(i), "--qty",
                          "1", "--unit-price-cents", "10"},
                         ""));
  for (auto pid : pids) {
    auto r = wait(pid);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  // Every owner released the store (its server stopped): we can own it, and it holds the order.
  int fd = ::open((cli_dir() / "nats" / "owner.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ::close(fd);
  auto server = jetsource::embedded_server::start({.data_dir = cli_dir() / "nats"});
  ASSERT_TRUE(server) << server.error();
  auto conn = jetsource::connection::connect({.urls = {server->url()}});
  ASSERT_TRUE(conn) << conn.error();
  {
    auto s = jetsource::event_store::open(*conn, orders_stream());
    ASSERT_TRUE(s) << s.error();
    jetsource::repository<order> orders{*s};
    auto l = orders.load("emb");
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->version, 1u + writers);
    EXPECT_EQ(l->state.lines().size(), std::size_t{writers});
  }
}

}  // namespace

// -- the read side: serve, query, projections ------------------------------------------------

class OrderCliReadTest : public OrderCliTest {};

TEST_F(OrderCliReadTest, ServeAppliesCommandsAndQueriesPrintTheContractShapes) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_sample();  // o-1 for c-1: widget 2 x 250, gadget 1 x 1000
  ASSERT_EQ(run({"order", "place", "o-1"}).code, 0);
  ASSERT_EQ(run({"order", "pay", "o-1", "--amount-cents", "1500"}).code, 0);

  auto order = query_until({"query", "order", "o-1", "--json"},
                           [](const nlohmann::json& j) { return j["status"] == "paid"; });
  EXPECT_EQ(keys_of(order),
            (std::vector<std::string>{"customer_id", "item_count", "items", "order_id", "status",
                                      "total_cents", "version"}));  // sorted by nlohmann
  EXPECT_EQ(order["order_id"], "o-1");
  EXPECT_EQ(order["customer_id"], "c-1");
  EXPECT_EQ(order["item_count"], 3);
  EXPECT_EQ(order["total_cents"], 1500);
  EXPECT_EQ(order["version"], 5);  // created, 2 items, placed, paid
  ASSERT_EQ(order["items"].size(), 2u);
  EXPECT_EQ(order["items"][0],
            (nlohmann::json{{"sku", "gadget"}, {"qty", 1}, {"unit_price_cents", 1000}}));

  auto customer = query_until({"query", "customer", "c-1", "--json"},
                              [](const nlohmann::json& j) { return j["orders_paid"] == 1; });
  EXPECT_EQ(customer, (nlohmann::json{{"customer_id", "c-1"},
                                      {"orders_created", 1},
                                      {"orders_placed", 1},
                                      {"orders_paid", 1},
                                      {"orders_shipped", 0},
                                      {"orders_cancelled", 0},
                                      {"lifetime_value_cents", 1500},
                                      {"name", nullptr},  // issue 15: personal data
                                      {"email", nullptr},
                                      {"forgotten", false}}));
  auto product = query_until({"query", "product", "widget", "--json"},
                             [](const nlohmann::json& j) { return j["units_sold"] == 2; });
  EXPECT_EQ(product,
            (nlohmann::json{{"sku", "widget"}, {"units_sold", 2}, {"revenue_cents", 500}}));

  // Not found: 4; bad id: 2; human output for people.
  EXPECT_EQ(run({"query", "order", "o-404"}).code, 4);
  EXPECT_EQ(run({"query", "customer", "nobody"}).code, 4);
  EXPECT_EQ(run({"query", "product", "unsold"}).code, 4);
  EXPECT_EQ(run({"query", "order", "bad.id"}).code, 2);
  auto text = run({"query", "order", "o-1"});
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("status: paid"), std::string::npos) << text.out;

  auto status = run({"projections", "status", "--json"});
  ASSERT_EQ(status.code, 0) << status.err;
  auto list = json_of(status.out);
  ASSERT_EQ(list.size(), 3u);
  for (const auto& p : list) {
    for (const char* key : {"name", "version", "last_applied_seq", "pending", "dead_letters"})
      EXPECT_TRUE(p.contains(key)) << key << " missing in " << p.dump();
    EXPECT_EQ(p["dead_letters"], 0);
  }
  EXPECT_EQ(list[0]["name"], "order_summary");
  auto dead = run({"projections", "dead-letters", "--json"});
  EXPECT_EQ(dead.code, 0);
  EXPECT_EQ(json_of(dead.out), nlohmann::json::array());
  EXPECT_EQ(run({"projections", "rebuild", "no_such_model"}).code, 2);
  stop(serve);
}

TEST_F(OrderCliReadTest, ServeKilledAndRestartedLosesAndDoublesNothing) {
  pid_t serve = spawn({"serve"}, server_->url());
  pid_t writer =
      spawn({"load", "--orders", "300", "--customers", "20", "--concurrency", "4"}, server_->url());
  std::this_thread::sleep_for(std::chrono::milliseconds{700});
  ASSERT_EQ(::kill(serve, SIGKILL), 0);
  (void)wait(serve);
  serve = spawn({"serve"}, server_->url());
  auto load = wait(writer);
  ASSERT_EQ(load.code, 0) << load.err;
  EXPECT_NE(load.out.find("load: 300 orders"), std::string::npos) << load.out;
  // Caught up: nothing pending anywhere.
  for (int i = 0; i < 400; ++i) {
    auto s = run({"projections", "status", "--json"});
    bool done = s.code == 0;
    if (done)
      for (const auto& p : json_of(s.out))
        done = done && p["pending"] == 0 && p["last_applied_seq"] == commits();
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  stop(serve);
  // Every order once, in every read model, and consistent with each other.
  auto summary = jetsource::open_read_model(cli_dir() / "order_summary.db");
  auto customers = jetsource::open_read_model(cli_dir() / "customer_stats.db");
  auto products = jetsource::open_read_model(cli_dir() / "product_sales.db");
  ASSERT_TRUE(summary && customers && products);
  auto scalar = [](jetsource::sqlite::database& db, const char* sql) {
    auto r = db.query_one(sql);
    EXPECT_TRUE(r && *r) << sql;
    return r && *r ? (**r).get<std::int64_t>(0) : -1;
  };
  EXPECT_EQ(scalar(*summary, "SELECT count(*) FROM orders"), 300);
  EXPECT_EQ(scalar(*customers, "SELECT sum(orders_created) FROM customers"), 300);
  EXPECT_EQ(scalar(*customers, "SELECT sum(orders_cancelled) FROM customers"),
            scalar(*summary, "SELECT count(*) FROM orders WHERE status = 'cancelled'"));
  EXPECT_EQ(
      scalar(*customers, "SELECT sum(lifetime_value_cents) FROM customers"),
      scalar(*summary, "SELECT sum(total_cents) FROM orders WHERE status IN ('paid', 'shipped')"));
  EXPECT_EQ(
      scalar(*products, "SELECT sum(units_sold) FROM products"),
      scalar(*summary, "SELECT sum(item_count) FROM orders WHERE status IN ('paid', 'shipped')"));
}
