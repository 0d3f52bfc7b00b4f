// The order-system read models over event sequences, in memory (no server), through the same
// apply path as the projector (jetsource::testing::projection_test).
#include <jetsource/testing/projection_test.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>

#include <gtest/gtest.h>

namespace {

using jetsource::testing::projection_test;
using namespace order_system;

std::vector<std::string> rows(projection_test& t, const char* sql) {
  auto r = t.db().query(sql);
  EXPECT_TRUE(r) << r.error();
  std::vector<std::string> out;
  if (!r) return out;
  for (const auto& row : *r) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) line += (i ? "|" : "") + row.get<std::string>(i);
    out.push_back(line);
  }
  return out;
}

// o-1 for c-1: widget 2 x 250, gadget 1 x 1000, then more widgets; placed and paid.
void paid_order(projection_test& t) {
  ASSERT_TRUE(t.given("Order", "o-1", order_created{"c-1"}, item_added{"widget", 2, 250},
                      item_added{"gadget", 1, 1000}));
  ASSERT_TRUE(t.given("Order", "o-1", item_added{"widget", 1, 250}));
  ASSERT_TRUE(t.given("Order", "o-1", order_placed{"c-1", 1750}));
  ASSERT_TRUE(
      t.given("Order", "o-1", order_paid{"c-1", 1750, {{"gadget", 1, 1000}, {"widget", 3, 250}}}));
}

TEST(OrderSummary, KeepsStatusLinesCountTotalAndVersion) {
  projection_test t(order_summary());
  ASSERT_FALSE(t.setup_error()) << *t.setup_error();
  paid_order(t);
  EXPECT_EQ(rows(t,
                 "SELECT order_id, customer_id, status, item_count, total_cents, version "
                 "FROM orders"),
            std::vector<std::string>{"o-1|c-1|paid|4|1750|6"});
  EXPECT_EQ(rows(t, "SELECT sku, qty, unit_price_cents FROM order_lines ORDER BY sku"),
            (std::vector<std::string>{"gadget|1|1000", "widget|3|250"}));
  ASSERT_TRUE(t.given("Order", "o-1", order_shipped{"c-1"}));
  EXPECT_EQ(rows(t, "SELECT status, version FROM orders"), std::vector<std::string>{"shipped|7"});
}

TEST(OrderSummary, RemovingALineTakesItsQuantityAndTotalAway) {
  projection_test t(order_summary());
  ASSERT_TRUE(t.given("Order", "o-2", order_created{"c-1"}, item_added{"a", 2, 100},
                      item_added{"b", 3, 10}));
  ASSERT_TRUE(t.given("Order", "o-2", item_removed{"a", 2, 100}));
  EXPECT_EQ(rows(t, "SELECT item_count, total_cents, version FROM orders"),
            std::vector<std::string>{"3|30|4"});
  EXPECT_EQ(rows(t, "SELECT sku FROM order_lines"), std::vector<std::string>{"b"});
}

TEST(OrderSummary, ACancelledOrderKeepsItsLinesAndTotal) {
  projection_test t(order_summary());
  ASSERT_TRUE(t.given("Order", "o-3", order_created{"c-2"}, item_added{"a", 1, 500}));
  ASSERT_TRUE(t.given("Order", "o-3", order_placed{"c-2", 500}));
  ASSERT_TRUE(t.given("Order", "o-3", order_cancelled{"c-2", "too slow"}));
  EXPECT_EQ(rows(t, "SELECT status, item_count, total_cents, cancel_reason FROM orders"),
            std::vector<std::string>{"cancelled|1|500|too slow"});
  EXPECT_EQ(rows(t, "SELECT count(*) FROM order_lines"), std::vector<std::string>{"1"});
}

TEST(CustomerStats, CountsEveryStageAndTheLifetimeValue) {
  projection_test t(customer_stats());
  ASSERT_FALSE(t.setup_error()) << *t.setup_error();
  paid_order(t);
  ASSERT_TRUE(t.given("Order", "o-1", order_shipped{"c-1"}));
  ASSERT_TRUE(t.given("Order", "o-2", order_created{"c-1"}));
  ASSERT_TRUE(t.given("Order", "o-2", order_cancelled{"c-1", ""}));
  ASSERT_TRUE(t.given("Order", "o-3", order_created{"c-9"}));
  EXPECT_EQ(rows(t,
                 "SELECT customer_id, orders_created, orders_placed, orders_paid, "
                 "orders_shipped, orders_cancelled, lifetime_value_cents FROM customers "
                 "ORDER BY customer_id"),
            (std::vector<std::string>{"c-1|2|1|1|1|1|1750", "c-9|1|0|0|0|0|0"}));
}

TEST(ProductSales, CountsUnitsAndRevenueWhenPaidOnly) {
  projection_test t(product_sales());
  ASSERT_FALSE(t.setup_error()) << *t.setup_error();
  ASSERT_TRUE(t.given("Order", "o-0", order_created{"c-1"}, item_added{"widget", 5, 250}));
  EXPECT_TRUE(rows(t, "SELECT * FROM products").empty()) << "counted before payment";
  paid_order(t);
  ASSERT_TRUE(t.given("Order", "o-4", order_created{"c-2"}, item_added{"widget", 1, 250}));
  ASSERT_TRUE(t.given("Order", "o-4", order_placed{"c-2", 250}));
  ASSERT_TRUE(t.given("Order", "o-4", order_paid{"c-2", 250, {{"widget", 1, 250}}}));
  EXPECT_EQ(rows(t, "SELECT sku, units_sold, revenue_cents FROM products ORDER BY sku"),
            (std::vector<std::string>{"gadget|1|1000", "widget|4|1000"}));
}

TEST(ReadModels, ARedeliveredEventIsCountedOnce) {
  projection_test t(customer_stats());
  ASSERT_TRUE(t.given("Order", "o-1", order_created{"c-1"}));
  ASSERT_TRUE(t.given("Order", "o-1", order_cancelled{"c-1", ""}));
  ASSERT_TRUE(t.redeliver(1));
  ASSERT_TRUE(t.redeliver(2));
  EXPECT_EQ(rows(t, "SELECT orders_created, orders_cancelled FROM customers"),
            std::vector<std::string>{"1|1"});
}

}  // namespace
