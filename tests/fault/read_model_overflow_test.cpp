// Fault 7 of issue 10: a read-model sum that overflows 64 bits is an error (the event is
// dead-lettered), never a silently wrong answer; the query side never prints a clamped number.
#include <jetsource/sqlite.hpp>

#include <order_system/order.hpp>

#include "order_cli_fixture.hpp"

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::test::json_of;
using jetsource::test::outcome;

class ReadModelOverflowTest : public jetsource::test::order_cli_test {
 protected:
  // An order of one line `sku` x 1 at `price` for c-1, placed and paid.
  void paid_order(const std::string& id, const std::string& sku, std::int64_t price) {
    auto created = run({"order", "create", "--customer", "c-1", "--order-id", id, "--item",
                        fmt::format("{}:1:{}", sku, price)});
    ASSERT_EQ(created.code, 0) << created.err;
    ASSERT_EQ(run({"order", "place", id}).code, 0);
    auto paid = run({"order", "pay", id, "--amount-cents", std::to_string(price)});
    ASSERT_EQ(paid.code, 0) << paid.err;
  }

  // Polls `projections dead-letters --json` until `n` dead letters are listed (bounded).
  nlohmann::json dead_letters_until(std::size_t n) {
    nlohmann::json list = nlohmann::json::array();
    for (int i = 0; i < 300; ++i) {
      auto r = run({"projections", "dead-letters", "--json"});
      if (r.code == 0) list = json_of(r.out);
      if (list.size() >= n) return list;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    ADD_FAILURE() << "fewer than " << n << " dead letters after 15 s: " << list.dump();
    return list;
  }
};

constexpr std::int64_t five_e18 = 5'000'000'000'000'000'000;

TEST_F(ReadModelOverflowTest, SumPastInt64IsDeadLetteredNotClamped) {
  pid_t serve = spawn({"serve"}, server_->url());
  paid_order("o-1", "big", five_e18);
  paid_order("o-2", "big", five_e18);  // product revenue and lifetime value: 10^19 > 2^63 - 1

  auto dead = dead_letters_until(2);
  std::set<std::string> models;
  for (const auto& d : dead) {
    models.insert(d["projection"].get<std::string>());
    EXPECT_EQ(d["aggregate_id"], "o-2") << d.dump();
    EXPECT_EQ(d["event_type"], "OrderPaid") << d.dump();
    EXPECT_NE(d["error"].get<std::string>().find("REAL"), std::string::npos) << d.dump();
  }
  EXPECT_EQ(models, (std::set<std::string>{"customer_stats", "product_sales"}));

  // The answers are those of the events applied (o-1 only), never a clamped or rounded sum.
  auto product = run({"query", "product", "big", "--json"});
  ASSERT_EQ(product.code, 0) << product.err;
  auto p = json_of(product.out);
  EXPECT_EQ(p["revenue_cents"], five_e18) << product.out;
  EXPECT_EQ(p["units_sold"], 1) << product.out;
  auto customer = run({"query", "customer", "c-1", "--json"});
  ASSERT_EQ(customer.code, 0) << customer.err;
  EXPECT_EQ(json_of(customer.out)["lifetime_value_cents"], five_e18) << customer.out;

  auto order = query_until({"query", "order", "o-2", "--json"},
                           [](const nlohmann::json& j) { return j["status"] == "paid"; });
  EXPECT_EQ(order["total_cents"], five_e18);  // the order summary is not affected
  stop(serve);
}

// A read-model file holding a non-integer where an integer belongs (written by an older
// version, or by hand) makes the query fail (exit 1) instead of printing a clamped number.
TEST_F(ReadModelOverflowTest, QueryRefusesToPrintANonIntegerAsAnInteger) {
  std::filesystem::create_directories(cli_dir());
  {
    auto db = jetsource::sqlite::database::open((cli_dir() / "product_sales.db").string());
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE(
        db->execute("CREATE TABLE products (sku TEXT PRIMARY KEY, units_sold INTEGER, "
                    "revenue_cents INTEGER)"));
    ASSERT_TRUE(db->execute("INSERT INTO products VALUES ('big', 2, 1e19), ('ok', 1, 10)"));
  }
  auto bad = run({"query", "product", "big", "--json"});
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_EQ(bad.out, "");
  EXPECT_NE(bad.err.find("revenue_cents"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out.find(std::to_string(std::numeric_limits<std::int64_t>::max())),
            std::string::npos);
  auto text = run({"query", "product", "big"});
  EXPECT_EQ(text.code, 1) << text.out;
  auto good = run({"query", "product", "ok", "--json"});
  ASSERT_EQ(good.code, 0) << good.err;
  EXPECT_EQ(json_of(good.out)["revenue_cents"], 10);
}

}  // namespace
