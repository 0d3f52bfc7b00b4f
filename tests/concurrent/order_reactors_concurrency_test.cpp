// The sample's reactors under TSan (label concurrent; issue 12): the inventory process manager
// (record_sale commands to shared SKUs' Stock, optimistic-concurrency conflicts retried) and the
// webhook notifier (POSTs to a real webhook sink, one HTTP client per call) run as two members
// each, 3 workers per member, in one process, while two threads create, place, pay and ship
// orders over four shared SKUs; the second members join mid-way, so partitions move while
// handlers run. Every paid line is counted once on its SKU, and the sink got every (order,
// event) with the event's Idempotency-Key, each order's in version order.
#include <order_system/reactors.hpp>
#include <order_system/stream.hpp>

#include "nats_fixture.hpp"
#include "webhook_sink.hpp"

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace order_system;

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;

class OrderReactorsConcurrencyTest : public nats_test {
 protected:
  void TearDown() override {
    stocks_.reset();
    orders_.reset();
    store_.reset();
    nats_test::TearDown();
  }
  reactor_member start(const reactor& r, const std::string& instance) {
    reactor_options o;
    o.stream = orders_stream().stream;
    o.instance = instance;
    o.lease = milliseconds(1500);
    o.workers = 3;
    o.retry.attempts = 20;  // a park would be a failure here: nothing fails for long
    o.retry.first_backoff = milliseconds(20);
    o.retry.max_backoff = milliseconds(200);
    o.metrics = nullptr;
    auto m = reactor_member::start(*conn_, r, o);
    EXPECT_TRUE(m) << instance << ": " << m.error();
    if (!m) std::abort();
    return std::move(m).value();
  }

  std::optional<event_store> store_;
  std::optional<repository<order>> orders_;
  std::optional<repository<stock>> stocks_;
};

TEST_F(OrderReactorsConcurrencyTest, InventoryAndNotificationsMembersRunConcurrently) {
  store_.emplace(open_store(orders_stream()));
  orders_.emplace(*store_);
  stocks_.emplace(*store_);
  webhook_sink sink(std::chrono::seconds(3), 1);  // see webhook_sink: one server thread
  auto hook = webhook::make({.url = sink.url()});
  ASSERT_TRUE(hook) << hook.error();
  const auto inventory = inventory_reactor(*stocks_);
  const auto notifications = notifications_reactor(*hook);

  constexpr int orders = 40;
  const std::vector<std::string> skus{"sku-a", "sku-b", "sku-c", "sku-d"};
  std::map<std::string, std::int64_t> expected_sold;  // written before the writers start
  std::vector<std::vector<order_line>> lines(orders);
  for (int i = 0; i < orders; ++i) {
    lines[i] = {{skus[i % 4], 1 + i % 3, 100}, {skus[(i + 1) % 4], 2, 50}};
    for (const auto& l : lines[i]) expected_sold[l.sku] += l.qty;
  }

  auto i1 = start(inventory, "i1");
  auto n1 = start(notifications, "n1");
  std::atomic<int> written{0};
  auto writer = [&](int first) {
    for (int i = first; i < orders; i += 2) {
      const auto id = "o-" + std::to_string(i);
      std::int64_t total = 0;
      for (const auto& l : lines[i]) total += l.qty * l.unit_price_cents;
      EXPECT_TRUE(orders_->execute(id, create_order{"c-" + id, lines[i]}));
      EXPECT_TRUE(orders_->execute(id, place_order{}));
      EXPECT_TRUE(orders_->execute(id, pay_order{total}));
      EXPECT_TRUE(orders_->execute(id, ship_order{}));
      ++written;
    }
  };
  std::thread w0(writer, 0), w1(writer, 1);
  while (written.load() < orders / 2) std::this_thread::sleep_for(milliseconds(5));
  auto i2 = start(inventory, "i2");  // join while orders are written and handled
  auto n2 = start(notifications, "n2");
  w0.join();
  w1.join();

  const auto sold = [&](const std::string& sku) {
    auto s = stocks_->load(sku);
    return s ? s->state.sold() : -1;
  };
  const auto all_sold = [&] {
    for (const auto& [sku, n] : expected_sold)
      if (sold(sku) != n) return false;
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!all_sold() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(50));
  for (const auto& [sku, n] : expected_sold) EXPECT_EQ(sold(sku), n) << sku;
  const auto everything = [&](const std::vector<webhook_sink::request>& rs) {
    std::set<std::pair<std::string, std::string>> got;
    for (const auto& r : rs)
      if (r.status == 200) got.emplace(r.order_id, r.event);
    return got.size() == 2u * orders;
  };
  ASSERT_TRUE(sink.wait_until(everything, milliseconds(60000)))
      << sink.delivered().size() << " deliveries";
  for (auto* m : {&i1, &i2, &n1, &n2}) ASSERT_TRUE(m->stop());

  // Per order: the first delivery of each event, in arrival order, is in version order; every
  // delivery carries its event's key.
  std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> firsts;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& r : sink.delivered()) {
    EXPECT_EQ(r.idempotency_key, fmt::format("notifications:Order:{}:{}", r.order_id, r.version));
    if (seen.emplace(r.order_id, r.event).second)
      firsts[r.order_id].emplace_back(r.event, r.version);
  }
  ASSERT_EQ(firsts.size(), static_cast<std::size_t>(orders));
  for (const auto& [id, evs] : firsts) {
    ASSERT_EQ(evs.size(), 2u) << id;
    EXPECT_EQ(evs[0].first, "OrderPlaced") << id;
    EXPECT_EQ(evs[1].first, "OrderShipped") << id;
    EXPECT_LT(evs[0].second, evs[1].second) << id;
  }
}

}  // namespace
}  // namespace jetsource::test
