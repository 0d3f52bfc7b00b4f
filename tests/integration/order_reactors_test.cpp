// The order-system's reactors (issue 12) on a real nats-server and store, their handlers called
// as the engine calls them (reaction_driver.hpp): inventory records each paid line once on its
// SKU's Stock, also when redelivered or run concurrently; notifications POST the contract's body
// and Idempotency-Key to a real webhook sink, and fail on a 500 or a timeout.
#include <order_system/reactors.hpp>
#include <order_system/stream.hpp>

#include "nats_fixture.hpp"
#include "reaction_driver.hpp"
#include "webhook_sink.hpp"

#include <thread>

using namespace order_system;
using jetsource::errc;
using jetsource::repository;
using jetsource::test::handle_event;
using jetsource::test::webhook_sink;

namespace {

class OrderReactorsTest : public jetsource::test::nats_test {
 protected:
  void TearDown() override {
    stocks_.reset();
    orders_.reset();
    store_.reset();
    nats_test::TearDown();
  }
  jetsource::event_store& store() {
    if (!store_) store_.emplace(open_store(orders_stream()));
    return *store_;
  }
  repository<order>& orders() {
    if (!orders_) orders_.emplace(store());
    return *orders_;
  }
  repository<stock>& stocks() {
    if (!stocks_) stocks_.emplace(store());
    return *stocks_;
  }
  // Creates (with the lines), places and pays order `id`; returns the OrderPaid event's version.
  std::uint64_t paid(const std::string& id, std::vector<order_line> lines) {
    std::int64_t total = 0;
    for (const auto& l : lines) total += l.qty * l.unit_price_cents;
    auto c = orders().execute(id, create_order{"c-" + id, lines});
    EXPECT_TRUE(c) << c.error();
    EXPECT_TRUE(orders().execute(id, place_order{}));
    auto p = orders().execute(id, pay_order{total});
    EXPECT_TRUE(p) << p.error();
    return p ? p->version : 0;
  }
  std::int64_t sold(const std::string& sku) {
    auto s = stocks().load(sku);
    EXPECT_TRUE(s) << s.error();
    return s ? s->state.sold() : -1;
  }
  std::vector<jetsource::stored_commit> stock_commits(const std::string& sku) {
    auto log = store().read(stock::type_name, sku);
    EXPECT_TRUE(log) << log.error();
    return log ? log->commits : std::vector<jetsource::stored_commit>{};
  }

  std::optional<jetsource::event_store> store_;
  std::optional<repository<order>> orders_;
  std::optional<repository<stock>> stocks_;
};

}  // namespace

// -- inventory -------------------------------------------------------------------------------
TEST_F(OrderReactorsTest, InventoryRecordsEachPaidLineOnItsSkuWithIdsFromTheEvent) {
  auto inventory = inventory_reactor(stocks());
  auto v = paid("o-1", {{"widget", 2, 250}, {"gadget", 1, 1000}});
  auto h = handle_event(inventory, store(), "Order", "o-1", v);
  ASSERT_TRUE(h.had_handler);
  ASSERT_TRUE(h.outcome) << h.outcome.error();
  EXPECT_EQ(sold("widget"), 2);
  EXPECT_EQ(sold("gadget"), 1);

  auto pay_commit = store().read("Order", "o-1")->commits.back();
  auto w = stock_commits("widget");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].commit_id, "inventory:Order:o-1:" + std::to_string(v) + ":0");
  EXPECT_EQ(w[0].causation_id, pay_commit.commit_id);
  EXPECT_EQ(w[0].event_types, "SaleRecorded");
  auto g = stock_commits("gadget");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].commit_id, "inventory:Order:o-1:" + std::to_string(v) + ":1");
}

TEST_F(OrderReactorsTest, InventoryPassesOverOtherOrderEvents) {
  auto inventory = inventory_reactor(stocks());
  auto v = paid("o-1", {{"widget", 2, 250}});
  for (std::uint64_t earlier = 1; earlier < v; ++earlier)
    EXPECT_FALSE(handle_event(inventory, store(), "Order", "o-1", earlier).had_handler);
  EXPECT_EQ(stock_commits("widget").size(), 0u);
}

TEST_F(OrderReactorsTest, ARedeliveredPaidEventCountsItsLinesOnce) {
  auto inventory = inventory_reactor(stocks());
  auto v = paid("o-1", {{"widget", 2, 250}, {"gadget", 1, 1000}});
  for (int attempt : {1, 2, 1, 3}) {  // retries, and a redelivery after a handover
    auto h = handle_event(inventory, store(), "Order", "o-1", v, attempt);
    ASSERT_TRUE(h.outcome) << h.outcome.error();
  }
  EXPECT_EQ(sold("widget"), 2);
  EXPECT_EQ(sold("gadget"), 1);
  EXPECT_EQ(stock_commits("widget").size(), 1u);
  EXPECT_EQ(stock_commits("gadget").size(), 1u);
}

TEST_F(OrderReactorsTest, ALineIsCountedOnceEvenUnderAnotherCommandId) {
  // After the duplicate window a redelivery's command id is no longer recognised: Stock itself
  // counts an (order, line) once.
  auto inventory = inventory_reactor(stocks());
  auto v = paid("o-1", {{"widget", 2, 250}});
  ASSERT_TRUE(handle_event(inventory, store(), "Order", "o-1", v).outcome);
  auto again = stocks().execute("widget", record_sale{"o-1", 0, 2}, {.command_id = "late-retry"});
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->events, 0u);
  EXPECT_EQ(sold("widget"), 2);
}

TEST_F(OrderReactorsTest, StockMayGoNegativeAndTheOrderIsUntouched) {
  ASSERT_TRUE(stocks().execute("widget", receive_stock{1}));
  auto inventory = inventory_reactor(stocks());
  auto v = paid("o-1", {{"widget", 3, 250}});
  ASSERT_TRUE(handle_event(inventory, store(), "Order", "o-1", v).outcome);
  auto s = stocks().load("widget");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state.on_hand(), -2);
  auto o = orders().load("o-1");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->version, v);  // nothing appended to the order
  EXPECT_EQ(o->state.status(), order_status::paid);
}

TEST_F(OrderReactorsTest, ConcurrentHandlersOnOneSkuConflictRetryAndCountEveryLine) {
  // Four "members", each with its own repository (as separate processes: their caches do not
  // see each other's commits, so appends to the shared SKUs conflict and are retried).
  constexpr int members = 4, per_member = 8;
  std::vector<std::pair<std::string, std::uint64_t>> paid_orders;
  std::int64_t widgets = 0;
  for (int i = 0; i < members * per_member; ++i) {
    auto id = "o-" + std::to_string(i);
    paid_orders.emplace_back(id, paid(id, {{"widget", 1 + i % 3, 100}, {"gadget", 1, 50}}));
    widgets += 1 + i % 3;
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int m = 0; m < members; ++m) {
    threads.emplace_back([&, m] {
      repository<stock> own{store()};
      auto inventory = inventory_reactor(own);
      for (int k = 0; k < per_member; ++k) {
        auto& [id, v] = paid_orders[static_cast<std::size_t>(m * per_member + k)];
        if (!handle_event(inventory, store(), "Order", id, v).outcome) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(sold("widget"), widgets);
  EXPECT_EQ(sold("gadget"), members * per_member);
  EXPECT_EQ(stock_commits("widget").size(), static_cast<std::size_t>(members * per_member));
}

// -- notifications ---------------------------------------------------------------------------
namespace {
webhook hook_to(const webhook_sink& sink,
                std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
  auto h = webhook::make(
      {.url = sink.url(), .connect_timeout = std::chrono::seconds{2}, .timeout = timeout});
  EXPECT_TRUE(h) << h.error();
  return std::move(h).value();
}
}  // namespace

TEST_F(OrderReactorsTest, NotificationsPostPlacedAndShippedWithTheKeyAsTheContractSays) {
  webhook_sink sink;
  auto notifications = notifications_reactor(hook_to(sink));
  auto v = paid("o-1", {{"widget", 2, 250}});
  ASSERT_TRUE(orders().execute("o-1", ship_order{}));
  const std::uint64_t placed = v - 1, shipped = v + 1;
  for (std::uint64_t version = 1; version <= shipped; ++version) {
    auto h = handle_event(notifications, store(), "Order", "o-1", version);
    EXPECT_EQ(h.had_handler, version == placed || version == shipped) << version;
    EXPECT_TRUE(h.outcome) << h.outcome.error();
  }
  auto got = sink.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].path, "/hooks/orders");
  EXPECT_EQ(got[0].content_type, "application/json");
  EXPECT_EQ(got[0].body,
            R"({"event":"OrderPlaced","order_id":"o-1","customer_id":"c-o-1","version":)" +
                std::to_string(placed) + "}");
  EXPECT_EQ(got[0].idempotency_key, "notifications:Order:o-1:" + std::to_string(placed));
  EXPECT_EQ(got[1].body,
            R"({"event":"OrderShipped","order_id":"o-1","customer_id":"c-o-1","version":)" +
                std::to_string(shipped) + "}");
  EXPECT_EQ(got[1].idempotency_key, "notifications:Order:o-1:" + std::to_string(shipped));
}

TEST_F(OrderReactorsTest, ANotificationAnswered500IsAnErrorAndTheRetryCarriesTheSameKey) {
  webhook_sink sink;
  auto notifications = notifications_reactor(hook_to(sink));
  auto v = paid("o-1", {{"widget", 2, 250}});
  sink.fail_order("o-1", webhook_sink::failure::status_500);
  auto h = handle_event(notifications, store(), "Order", "o-1", v - 1);
  ASSERT_FALSE(h.outcome);
  EXPECT_EQ(h.outcome.error().code, errc::server_error) << h.outcome.error();
  sink.fail_order("o-1", webhook_sink::failure::none);
  auto retry = handle_event(notifications, store(), "Order", "o-1", v - 1, 2);
  EXPECT_TRUE(retry.outcome) << retry.outcome.error();
  auto got = sink.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].status, 500);
  EXPECT_EQ(got[1].status, 200);
  EXPECT_EQ(got[0].idempotency_key, got[1].idempotency_key);
  EXPECT_EQ(got[0].body, got[1].body);
}

TEST_F(OrderReactorsTest, ANotificationNotAnsweredInTimeIsATimeout) {
  webhook_sink sink(std::chrono::seconds{3});
  auto notifications = notifications_reactor(hook_to(sink, std::chrono::milliseconds{300}));
  auto v = paid("o-1", {{"widget", 2, 250}});
  sink.fail_all(webhook_sink::failure::delay);
  auto start = std::chrono::steady_clock::now();
  auto h = handle_event(notifications, store(), "Order", "o-1", v - 1);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(h.outcome);
  EXPECT_EQ(h.outcome.error().code, errc::timeout) << h.outcome.error();
  EXPECT_LT(took, std::chrono::seconds{2});
}
