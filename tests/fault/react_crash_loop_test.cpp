// The order-system's reactors under fire (issue 12): `react` members killed (SIGKILL) 20+ times
// at random while orders are paid and shipped; afterwards every SKU's sold equals the sum of its
// paid lines (exactly once), and the webhook sink saw every expected (order, event), one distinct
// Idempotency-Key per key, first deliveries in version order per order. Then poison: a failing
// webhook parks the order while others flow, retry after the fix delivers in order, skip moves on.
#include "order_cli_fixture.hpp"
#include "webhook_sink.hpp"

#include <order_system/stock.hpp>

#include <map>
#include <random>
#include <set>

using jetsource::repository;
using jetsource::test::json_of;
using jetsource::test::webhook_sink;
using namespace order_system;

namespace {

class ReactCrashLoopTest : public jetsource::test::order_cli_test {
 protected:
  void TearDown() override {
    for (auto& [name, pid] : members_)
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        wait(pid);
      }
    members_.clear();
    order_cli_test::TearDown();
  }

  // `react --instance NAME` with the sink as webhook and a short lease (takeover ~1.5 s).
  void start_member(const std::string& name, const webhook_sink& sink) {
    members_[name] = spawn({"react", "--instance", name, "--webhook", sink.url(), "--lease-ms",
                            "1500", "--webhook-timeout-ms", "2000"},
                           server_->url());
    ASSERT_GT(members_[name], 0);
  }
  void kill_member(const std::string& name) {
    ASSERT_EQ(::kill(members_[name], SIGKILL), 0);
    wait(members_[name]);
    members_[name] = -1;
  }
  void stop_members() {
    for (auto& [name, pid] : members_) {
      if (pid <= 0) continue;
      ::kill(pid, SIGTERM);
      auto r = wait(pid);
      EXPECT_EQ(r.code, 0) << name << ": " << r.err;
      pid = -1;
    }
  }

  // Creates, places and pays an order with its lines; ships it when `ship`.
  void order_paid(repository<order>& orders, const std::string& id,
                  const std::vector<order_line>& lines, bool ship) {
    std::int64_t total = 0;
    for (const auto& l : lines) total += l.qty * l.unit_price_cents;
    ASSERT_TRUE(orders.execute(id, create_order{"c-" + id, lines}));
    ASSERT_TRUE(orders.execute(id, place_order{}));
    ASSERT_TRUE(orders.execute(id, pay_order{total}));
    if (ship) {
      ASSERT_TRUE(orders.execute(id, ship_order{}));
    }
  }

  std::int64_t sold(const std::string& sku) {
    repository<stock> stocks{store()};
    auto s = stocks.load(sku);
    EXPECT_TRUE(s) << s.error();
    return s ? s->state.sold() : -1;
  }

  std::map<std::string, pid_t> members_;
};

}  // namespace

TEST_F(ReactCrashLoopTest, MembersKilledAtRandomCountEveryPaidLineOnceAndNotifyInOrder) {
  webhook_sink sink;
  const std::vector<std::string> names{"m-0", "m-1", "m-2"};
  for (const auto& n : names) start_member(n, sink);

  std::mt19937 rng(12);
  std::map<std::string, std::int64_t> expected_sold;
  // (order, version) -> event, for every notification expected
  std::map<std::pair<std::string, std::uint64_t>, std::string> expected_notes;
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    repository<order> orders{store()};
    std::mt19937 r(7);
    for (int i = 0; i < 120; ++i) {
      auto id = "o-" + std::to_string(i);
      std::vector<order_line> lines;
      std::set<int> skus;
      for (int k = 0, n = 1 + static_cast<int>(r() % 3); k < n; ++k)
        skus.insert(static_cast<int>(r() % 6));
      for (int s : skus)
        lines.push_back({"sku-" + std::to_string(s), 1 + static_cast<std::int64_t>(r() % 4), 100});
      const bool ship = i % 2 == 0;
      order_paid(orders, id, lines, ship);
      for (const auto& l : lines) expected_sold[l.sku] += l.qty;
      const std::uint64_t placed = 1 + lines.size() + 1;  // created+items, then placed
      expected_notes[{id, placed}] = "OrderPlaced";
      if (ship) expected_notes[{id, placed + 2}] = "OrderShipped";
      std::this_thread::sleep_for(std::chrono::milliseconds{40 + r() % 60});
    }
    writing = false;
  });

  int kills = 0;
  while (writing || kills < 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds{300 + rng() % 1000});
    const auto& victim = names[rng() % names.size()];
    kill_member(victim);
    ++kills;
    start_member(victim, sink);  // same instance name: it waits for its old registration
  }
  writer.join();
  EXPECT_GE(kills, 20);

  // Everyone caught up: every SKU's sold and every notification.
  auto all_delivered = [&](const std::vector<webhook_sink::request>& rs) {
    std::set<std::string> keys;
    for (const auto& r : rs)
      if (r.status == 200) keys.insert(r.idempotency_key);
    return keys.size() >= expected_notes.size();
  };
  EXPECT_TRUE(sink.wait_until(all_delivered, std::chrono::seconds{90}));
  for (int i = 0; i < 900; ++i) {
    bool done = true;
    for (const auto& [sku, units] : expected_sold) done = done && sold(sku) >= units;
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  stop_members();

  for (const auto& [sku, units] : expected_sold) EXPECT_EQ(sold(sku), units) << sku;

  // One key per (order, version), each expected one delivered, first deliveries in version order.
  std::map<std::string, std::pair<std::string, std::uint64_t>> key_of;  // key -> (order, version)
  std::map<std::string, std::vector<std::uint64_t>> first_seen;         // order -> versions
  std::set<std::string> seen_keys;
  std::size_t repeats = 0;
  for (const auto& r : sink.delivered()) {
    auto at = std::make_pair(r.order_id, r.version);
    auto it = expected_notes.find(at);
    ASSERT_NE(it, expected_notes.end()) << "unexpected notification " << r.body;
    EXPECT_EQ(r.event, it->second) << r.body;
    EXPECT_EQ(r.idempotency_key,
              "notifications:Order:" + r.order_id + ":" + std::to_string(r.version));
    auto k = key_of.emplace(r.idempotency_key, at).first;
    EXPECT_EQ(k->second, at) << "one key for two notifications: " << r.idempotency_key;
    if (seen_keys.insert(r.idempotency_key).second)
      first_seen[r.order_id].push_back(r.version);
    else
      ++repeats;
  }
  EXPECT_EQ(key_of.size(), expected_notes.size());
  for (const auto& [id, versions] : first_seen)
    EXPECT_TRUE(std::is_sorted(versions.begin(), versions.end())) << id;
  RecordProperty("kills", kills);
  RecordProperty("repeated_deliveries", static_cast<int>(repeats));
  std::printf("crash loop: %d kills, %zu notifications, %zu repeated deliveries\n", kills,
              expected_notes.size(), repeats);
}

TEST_F(ReactCrashLoopTest, AFailingWebhookParksTheOrderOthersFlowRetryDeliversInOrderSkipMovesOn) {
  webhook_sink sink;
  start_member("m-0", sink);
  repository<order> orders{store()};
  sink.fail_order("o-bad", webhook_sink::failure::status_500);
  sink.fail_order("o-skip", webhook_sink::failure::status_500);
  order_paid(orders, "o-bad", {{"widget", 1, 100}}, true);
  order_paid(orders, "o-skip", {{"widget", 1, 100}}, true);
  order_paid(orders, "o-good", {{"widget", 1, 100}}, true);

  // o-good flows (placed, shipped) while the other two park on their first notification.
  ASSERT_TRUE(sink.wait_until([](const auto& rs) {
    int good = 0;
    for (const auto& r : rs) good += r.order_id == "o-good" && r.status == 200;
    return good == 2;
  }));
  nlohmann::json parked;
  for (int i = 0; i < 300; ++i) {
    auto r = run({"reactors", "dead-letters", "notifications", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    parked = json_of(r.out);
    if (parked.size() == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  ASSERT_EQ(parked.size(), 2u) << parked.dump();
  std::set<std::string> ids;
  for (const auto& p : parked) {
    ids.insert(p["aggregate_id"].get<std::string>());
    EXPECT_EQ(p["event_type"], "OrderPlaced");
    EXPECT_NE(p["error"].get<std::string>().find("500"), std::string::npos) << p.dump();
  }
  EXPECT_EQ(ids, (std::set<std::string>{"o-bad", "o-skip"}));
  auto status = json_of(run({"reactors", "status", "--json"}).out);
  EXPECT_EQ(status[1]["reactor"], "notifications");
  EXPECT_EQ(status[1]["parked"].size(), 2u);
  EXPECT_EQ(status[0]["reactor"], "inventory");
  for (int i = 0; i < 300 && sold("widget") < 3; ++i)  // inventory, another reactor, went on
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  EXPECT_EQ(sold("widget"), 3);

  // Fixed: retry delivers o-bad's placed, then shipped.
  sink.fail_order("o-bad", webhook_sink::failure::none);
  auto retried = run({"reactors", "retry", "notifications", "o-bad"});
  ASSERT_EQ(retried.code, 0) << retried.err;
  ASSERT_TRUE(sink.wait_until([](const auto& rs) {
    std::vector<std::string> got;
    for (const auto& r : rs)
      if (r.order_id == "o-bad" && r.status == 200) got.push_back(r.event);
    return got == std::vector<std::string>{"OrderPlaced", "OrderShipped"};
  })) << "o-bad not delivered in order";

  // Skip: o-skip's placed is counted as handled; its shipped is delivered.
  sink.fail_order("o-skip", webhook_sink::failure::none);
  auto skipped = run({"reactors", "skip", "notifications", "o-skip"});
  ASSERT_EQ(skipped.code, 0) << skipped.err;
  ASSERT_TRUE(sink.wait_until([](const auto& rs) {
    for (const auto& r : rs)
      if (r.order_id == "o-skip" && r.status == 200) return r.event == "OrderShipped";
    return false;
  }));
  for (const auto& r : sink.delivered())
    EXPECT_FALSE(r.order_id == "o-skip" && r.event == "OrderPlaced");
  EXPECT_EQ(run({"reactors", "retry", "notifications", "o-skip"}).code, 4);  // not parked now
  EXPECT_EQ(run({"reactors", "retry", "nope", "o-skip"}).code, 2);
  auto none = json_of(run({"reactors", "dead-letters", "--json"}).out);
  EXPECT_TRUE(none.empty()) << none.dump();
  stop_members();
}

TEST_F(ReactCrashLoopTest, BadUsageExitsWith2BeforeAnyIo) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"react", "--webhook", "ftp://x/y"},
           {"react", "--webhook", "not a url"},
           {"react", "--instance", "a.b"},
           {"react", "--lease-ms", "10"},
           {"reactors"},
           {"reactors", "dead-letters", "nope"},
           {"reactors", "retry", "nope", "o-1"},
           {"reactors", "skip", "inventory"},
           {"reactors", "skip", "inventory", "bad.id"},
       }) {
    auto r = run_offline(args);
    std::string line;
    for (auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << "-> " << r.err;
    EXPECT_FALSE(r.err.empty()) << line;
  }
  EXPECT_EQ(run_offline({"reactors", "status"}).code, 1);  // valid, but no server
}

TEST_F(ReactCrashLoopTest, StatusBeforeAnyMemberSaysNeverStartedAndNothingIsParked) {
  auto r = run({"reactors", "status", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json_of(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_EQ(j[0]["reactor"], "inventory");
  EXPECT_EQ(j[0]["state"], "never started");
  EXPECT_EQ(j[1]["reactor"], "notifications");
  auto dl = run({"reactors", "dead-letters"});
  ASSERT_EQ(dl.code, 0) << dl.err;
  EXPECT_EQ(dl.out, "no dead letters\n");
  EXPECT_EQ(run({"reactors", "retry", "inventory", "o-1"}).code, 4);
}
