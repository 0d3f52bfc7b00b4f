// `order-system stock receive` and `query stock` (issue 12), the real binary against a real
// nats-server: the JSON shape, zeros for an unknown SKU, the text form, bad input exit codes.
#include "order_cli_fixture.hpp"

#include <order_system/stock.hpp>

using jetsource::test::json_of;

namespace {
// The keys in the order printed.
std::vector<std::string> ordered_keys(const std::string& text) {
  std::vector<std::string> out;
  const auto j = nlohmann::ordered_json::parse(text);  // items() must not outlive it
  for (const auto& [k, v] : j.items()) out.push_back(k);
  return out;
}
}  // namespace

class StockCliTest : public jetsource::test::order_cli_test {};

TEST_F(StockCliTest, ReceivedStockIsOnHand) {
  auto r = run({"stock", "receive", "widget", "--qty", "10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  ASSERT_EQ(run({"stock", "receive", "widget", "--qty", "5"}).code, 0);
  auto q = run({"query", "stock", "widget", "--json"});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(ordered_keys(q.out), (std::vector<std::string>{"sku", "received", "sold", "on_hand"}));
  auto j = json_of(q.out);
  EXPECT_EQ(j["sku"], "widget");
  EXPECT_EQ(j["received"], 15);
  EXPECT_EQ(j["sold"], 0);
  EXPECT_EQ(j["on_hand"], 15);
}

TEST_F(StockCliTest, ReceiveWithJsonSaysWhereItLanded) {
  auto r = run({"stock", "receive", "widget", "--qty", "3", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ordered_keys(r.out), (std::vector<std::string>{"sku", "version", "sequence"}));
  auto j = json_of(r.out);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["sequence"], commits());
}

TEST_F(StockCliTest, AnUnknownSkuHasZeros) {
  auto q = run({"query", "stock", "nothing-yet", "--json"});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(q.out, R"({"sku":"nothing-yet","received":0,"sold":0,"on_hand":0})"
                   "\n");
  auto text = run({"query", "stock", "nothing-yet"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out, "sku: nothing-yet\nreceived: 0\nsold: 0\non_hand: 0\n");
}

TEST_F(StockCliTest, SalesShowInQueryStock) {
  ASSERT_EQ(run({"stock", "receive", "widget", "--qty", "1"}).code, 0);
  jetsource::repository<order_system::stock> stocks{store()};
  ASSERT_TRUE(stocks.execute("widget", order_system::record_sale{"o-1", 0, 3}));
  auto j = json_of(run({"query", "stock", "widget", "--json"}).out);
  EXPECT_EQ(j["received"], 1);
  EXPECT_EQ(j["sold"], 3);
  EXPECT_EQ(j["on_hand"], -2);
}

TEST_F(StockCliTest, BadInputExitsWith2BeforeAnyIo) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"stock"},
           {"stock", "receive"},
           {"stock", "receive", "widget"},
           {"stock", "receive", "bad.sku", "--qty", "1"},
           {"stock", "receive", "widget", "--qty", "0"},
           {"stock", "receive", "widget", "--qty", "-4"},
           {"stock", "receive", "widget", "--qty", "x"},
           {"stock", "receive", "widget", "--qty", "99999999999999999999"},
           {"query", "stock"},
           {"query", "stock", "bad.sku"},
           {"query", "stock", "a*"},
       }) {
    auto r = run_offline(args);
    std::string line;
    for (auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << "-> " << r.err;
    EXPECT_FALSE(r.err.empty()) << line;
  }
  auto zero = run_offline({"stock", "receive", "widget", "--qty", "0"});
  EXPECT_NE(zero.err.find("the quantity must be at least 1"), std::string::npos) << zero.err;
  EXPECT_EQ(commits(), 0u);
}

TEST_F(StockCliTest, NoServerExitsWith1) {
  EXPECT_EQ(run_offline({"stock", "receive", "widget", "--qty", "1"}).code, 1);
  EXPECT_EQ(run_offline({"query", "stock", "widget"}).code, 1);
}
