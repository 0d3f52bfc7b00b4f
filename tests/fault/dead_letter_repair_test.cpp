// Issue 16: `projections retry|skip NAME AGGREGATE_ID` repair a poisoned order in a read model
// from the command line, whether a `serve` owns the read model's file (the request is handed to
// it: jetsource::request_retry / request_skip) or none runs (the command does it itself).
//
// The poison: two orders of customer c-1 paid 5e18 cents each make c-1's lifetime value leave
// 64 bits, so customer_stats dead-letters o-2's OrderPaid (read_model_overflow_test.cpp) and
// parks o-2's later OrderShipped behind it.
#include <jetsource/sqlite.hpp>

#include "order_cli_fixture.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

using jetsource::test::json_of;
using jetsource::test::outcome;

constexpr std::int64_t five_e18 = 5'000'000'000'000'000'000;

class DeadLetterRepairTest : public jetsource::test::order_cli_test {
 protected:
  void TearDown() override {
    if (serve_ > 0 && ::kill(serve_, SIGKILL) == 0) (void)wait(serve_);  // after a failure
    order_cli_test::TearDown();
  }

  void start_serve() { serve_ = spawn({"serve"}, server_->url()); }
  void stop_serve() {
    stop(serve_);
    serve_ = -1;
  }

  void paid_order(const std::string& id) {
    auto created = run({"order", "create", "--customer", "c-1", "--order-id", id, "--item",
                        fmt::format("big:1:{}", five_e18)});
    ASSERT_EQ(created.code, 0) << created.err;
    ASSERT_EQ(run({"order", "place", id}).code, 0);
    auto paid = run({"order", "pay", id, "--amount-cents", std::to_string(five_e18)});
    ASSERT_EQ(paid.code, 0) << paid.err;
  }

  // customer_stats of o-2: its OrderPaid poison, its OrderShipped parked behind it (serve runs).
  void poison_o2() {
    paid_order("o-1");
    paid_order("o-2");
    ASSERT_EQ(run({"order", "ship", "o-2"}).code, 0);
    for (int i = 0; i < 300 && dead_of_o2().size() < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    auto dead = dead_of_o2();
    ASSERT_EQ(dead.size(), 2u) << dead.dump();
    EXPECT_EQ(dead[0]["kind"], "poison");
    EXPECT_EQ(dead[0]["event_type"], "OrderPaid");
    EXPECT_EQ(dead[1]["kind"], "parked");
  }

  nlohmann::json dead_of_o2() {
    auto r = run({"projections", "dead-letters", "customer_stats", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    nlohmann::json out = nlohmann::json::array();
    if (r.code != 0) return out;
    for (const auto& d : json_of(r.out))
      if (d["aggregate_id"] == "o-2") out.push_back(d);
    return out;
  }

  nlohmann::json customer() {
    auto r = run({"query", "customer", "c-1", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json_of(r.out) : nlohmann::json::object();
  }

  // The operator's fix of the cause: c-1's lifetime value back to 0 (works while serve runs).
  void fix_lifetime_value() {
    auto db = jetsource::sqlite::database::open((cli_dir() / "customer_stats.db").string());
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE(
        db->execute("UPDATE customers SET lifetime_value_cents = 0 WHERE customer_id = 'c-1'"));
  }

  nlohmann::json repair(const std::string& verb) {
    auto r = run({"projections", verb, "customer_stats", "o-2", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json_of(r.out) : nlohmann::json::object();
  }

  pid_t serve_ = -1;
};

TEST_F(DeadLetterRepairTest, SkipWithServeRunningLetsTheOrdersLaterEventsApply) {
  start_serve();
  poison_o2();
  ASSERT_EQ(customer()["orders_shipped"], 0);

  auto j = repair("skip");
  EXPECT_EQ(j["by"], "the running serve") << j.dump();
  EXPECT_EQ(j["action"], "skip");
  EXPECT_EQ(j["aggregate_type"], "Order");
  EXPECT_EQ(j["remaining"], 0) << j.dump();
  EXPECT_EQ(j["dead_letters"], nlohmann::json::array());

  // The parked OrderShipped is applied; the skipped OrderPaid never ran.
  auto c = customer();
  EXPECT_EQ(c["orders_shipped"], 1) << c.dump();
  EXPECT_EQ(c["lifetime_value_cents"], five_e18) << c.dump();
  EXPECT_EQ(dead_of_o2(), nlohmann::json::array());
  stop_serve();
}

TEST_F(DeadLetterRepairTest, RetryWithServeStoppedIsDoneByTheCommand) {
  start_serve();
  poison_o2();
  stop_serve();

  // The cause is not fixed yet: both stay, the poison one counted as tried again.
  auto j = repair("retry");
  EXPECT_EQ(j["by"], "this command") << j.dump();
  EXPECT_EQ(j["remaining"], 2) << j.dump();
  ASSERT_EQ(j["dead_letters"].size(), 2u) << j.dump();
  EXPECT_EQ(j["dead_letters"][0]["attempts"], 2) << j.dump();

  fix_lifetime_value();
  j = repair("retry");
  EXPECT_EQ(j["by"], "this command") << j.dump();
  EXPECT_EQ(j["remaining"], 0) << j.dump();
  auto c = customer();
  EXPECT_EQ(c["orders_shipped"], 1) << c.dump();
  EXPECT_EQ(c["lifetime_value_cents"], five_e18) << c.dump();  // 0 + o-2's payment

  auto text = run({"projections", "retry", "customer_stats", "o-2"});
  EXPECT_EQ(text.code, 4) << text.out;  // nothing left to retry
  EXPECT_NE(text.err.find("Order o-2 has no dead letters"), std::string::npos) << text.err;
}

TEST_F(DeadLetterRepairTest, RetryWithServeRunningIsHandedToServe) {
  start_serve();
  poison_o2();

  auto j = repair("retry");
  EXPECT_EQ(j["by"], "the running serve") << j.dump();
  EXPECT_EQ(j["remaining"], 2) << j.dump();

  fix_lifetime_value();
  auto text = run({"projections", "retry", "customer_stats", "o-2"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("retried Order o-2 in customer_stats (by the running serve): 0 dead "
                          "letters remain"),
            std::string::npos)
      << text.out;
  auto c = customer();
  EXPECT_EQ(c["orders_shipped"], 1) << c.dump();
  EXPECT_EQ(c["lifetime_value_cents"], five_e18) << c.dump();

  // Not found through serve too; the other read models keep their own dead letters.
  auto none = run({"projections", "skip", "customer_stats", "o-1"});
  EXPECT_EQ(none.code, 4) << none.out;
  EXPECT_NE(none.err.find("Order o-1 has no dead letters"), std::string::npos) << none.err;
  auto product = run({"projections", "dead-letters", "product_sales", "--json"});
  EXPECT_EQ(json_of(product.out).size(), 2u) << product.out;
  stop_serve();
}

TEST_F(DeadLetterRepairTest, BadNamesAndMissingFilesAreSaidClearly) {
  auto missing = run({"projections", "retry", "customer_stats", "o-1"});
  EXPECT_EQ(missing.code, 4) << missing.out;
  EXPECT_NE(missing.err.find("no read model at"), std::string::npos) << missing.err;
  auto model = run({"projections", "skip", "customers", "o-1"});
  EXPECT_EQ(model.code, 2) << model.out;
  EXPECT_NE(model.err.find("no read model 'customers'"), std::string::npos) << model.err;
  auto id = run({"projections", "skip", "customer_stats", "o.1"});
  EXPECT_EQ(id.code, 2) << id.out;
  for (const char* verb : {"retry", "skip"}) {
    auto help = run({"projections", verb, "--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("Exit codes:"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("4  not found"), std::string::npos) << help.out;
  }
}

}  // namespace
