// Least-privilege permissions (issue 15 §2): nats-server started with the roles configuration of
// docs/security.md (the text itself, passwords filled in). Each role does its work with only its
// permissions (no violation in the server's log), and the refusals hold: a projector cannot
// append, a writer cannot delete the stream or a consumer, and a refused request reaches the
// caller as a clear error within the request timeout (not a hang).
#include <jetsource/event_store.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/rebuild.hpp>
#include <jetsource/repository.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stream.hpp>

#include "configured_server.hpp"
#include "nats/handles.hpp"

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

using jetsource::errc;
using jetsource::test::configured_server;
using namespace std::chrono_literals;

namespace {

// The fenced block after the "roles.conf" marker of docs/security.md, passwords filled in.
std::string roles_config() {
  std::ifstream in(std::string(JETSOURCE_SOURCE_DIR) + "/docs/security.md");
  std::stringstream s;
  s << in.rdbuf();
  const std::string doc = s.str();
  auto marker = doc.find("<!-- roles.conf");
  auto fence = doc.find("```\n", marker);
  auto end = doc.find("\n```", fence + 4);
  EXPECT_NE(marker, std::string::npos) << "no roles.conf block in docs/security.md";
  if (marker == std::string::npos || fence == std::string::npos || end == std::string::npos)
    return {};
  std::string text = doc.substr(fence + 4, end - fence - 4);
  for (const char* role : {"DEPLOYER", "WRITER", "PROJECTOR", "OPERATOR"}) {
    const std::string var = std::string("$") + role + "_PASSWORD";
    for (auto at = text.find(var); at != std::string::npos; at = text.find(var))
      text.replace(at, var.size(), std::string("\"pw-") + role + "\"");
  }
  if (const char* loosen = std::getenv("JETSOURCE_TEST_LOOSEN_ROLE"); loosen && *loosen) {
    // To show the refusals are the configuration's doing: the named role may publish anything.
    auto at = text.find(std::string(loosen) + " = {\n    publish: [");
    if (at != std::string::npos) text.insert(text.find('[', at) + 1, "\">\", ");
  }
  return text;
}

jetsource::store_options writer_store() {
  auto o = order_system::orders_stream();
  o.load_with_consumers = false;  // the writer may not delete consumers (docs/security.md)
  return o;
}

class PermissionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.emplace(roles_config());
    ASSERT_TRUE(server_->server);
    auto deployer = connect_as("deployer");
    ASSERT_TRUE(deployer);
    auto created = jetsource::event_store::open(*deployer, order_system::orders_stream());
    ASSERT_TRUE(created) << created.error();
  }

  std::optional<jetsource::connection> connect_as(const std::string& role,
                                                  std::chrono::milliseconds request_timeout = 5s) {
    std::string password = "pw-";  // as roles_config() fills them in: pw-WRITER, ...
    for (char ch : role) password += static_cast<char>(std::toupper(ch));
    auto c = jetsource::connection::connect({.urls = {server_->url()},
                                             .name = role,
                                             .user = role,
                                             .password = password,
                                             .request_timeout = request_timeout});
    EXPECT_TRUE(c) << role << ": " << c.error();
    if (!c) return std::nullopt;
    return std::move(c).value();
  }
  // Permission violations the server logged so far.
  int violations() const {
    const std::string log = server_->log();
    int n = 0;
    for (auto at = log.find("Violation"); at != std::string::npos;
         at = log.find("Violation", at + 1))
      ++n;
    return n;
  }
  // The writer's work: orders with 6 commits each (loads of 3+ commits before the head), then
  // loads of them.
  std::uint64_t write_orders(jetsource::event_store& store, int first, int count) {
    // No cache: every command loads (the 5th reads 4 commits before the head).
    jetsource::repository<order_system::order> repo{store, {.cache_capacity = 0}};
    std::uint64_t last = 0;
    for (int i = first; i < first + count; ++i) {
      const std::string id = "o-" + std::to_string(i);
      auto r = repo.execute(id, order_system::create_order{.customer_id = "c-1"});
      EXPECT_TRUE(r) << r.error();
      for (int k = 0; k < 4; ++k)
        EXPECT_TRUE(repo.execute(id, order_system::add_item{"sku-" + std::to_string(k), 1, 100}));
      auto placed = repo.execute(id, order_system::place_order{});
      EXPECT_TRUE(placed) << placed.error();
      if (placed) last = placed->sequence;
      auto l = repo.load(id);  // 6 commits: direct gets only
      EXPECT_TRUE(l) << l.error();
      if (l) {
        EXPECT_EQ(l->state.status(), order_system::order_status::placed);
      }
    }
    return last;
  }
  jetsource::projector_options projector_at(const std::string& file) {
    return {.stream = "ORDERS", .database = server_->dir.path() / file};
  }

  std::optional<configured_server> server_;
};

TEST_F(PermissionsTest, EachRoleWorksWithOnlyItsPermissions) {
  auto writer = connect_as("writer");
  auto projector = connect_as("projector");
  auto op = connect_as("operator");
  ASSERT_TRUE(writer && projector && op);

  auto store = jetsource::event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  const auto last = write_orders(*store, 0, 3);
  ASSERT_GT(last, 0u);
  {  // snapshots: written (without waiting for the ack) and read back
    ASSERT_TRUE(store->save_snapshot(
        "Order", "o-0", {.version = 6, .sequence = last, .schema = 1, .body = R"({"state":{}})"}));
    std::optional<jetsource::event_store::snapshot> snap;
    for (int i = 0; i < 100 && !snap; ++i) {
      auto l = store->load_snapshot("Order", "o-0");
      ASSERT_TRUE(l) << l.error();
      snap = *l;
      if (!snap) std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(snap);
    EXPECT_EQ(snap->version, 6u);
  }

  auto live = jetsource::projector::start(*projector, order_system::order_summary(),
                                          projector_at("order_summary.db"));
  ASSERT_TRUE(live) << live.error();
  ASSERT_TRUE(live->wait_for(last, 10s));
  const auto more = write_orders(*store, 3, 1);  // followed live
  ASSERT_TRUE(live->wait_for(more, 10s));

  ASSERT_TRUE(live->stop());

  // The operator: the status a projection reports (stream and consumer info) and a rebuild by
  // replay, which switches the stopped projection to the new file.
  auto status =
      jetsource::read_status(*op, order_system::order_summary(), projector_at("order_summary.db"));
  ASSERT_TRUE(status) << status.error();
  auto rebuilt =
      jetsource::rebuild(*op, order_system::order_summary(), projector_at("order_summary.db"));
  ASSERT_TRUE(rebuilt) << rebuilt.error();
  EXPECT_EQ(rebuilt->sequence, more);

  // The projector goes on from the rebuilt file (with the consumer the rebuild left it).
  auto again = jetsource::projector::start(*projector, order_system::order_summary(),
                                           projector_at("order_summary.db"));
  ASSERT_TRUE(again) << again.error();
  const auto after = write_orders(*store, 4, 1);
  ASSERT_TRUE(again->wait_for(after, 10s));
  ASSERT_TRUE(again->stop());

  EXPECT_EQ(violations(), 0) << server_->log();
}

TEST_F(PermissionsTest, AProjectorCannotAppend) {
  auto projector = connect_as("projector", 1500ms);
  ASSERT_TRUE(projector);
  const auto start = std::chrono::steady_clock::now();
  auto store = jetsource::event_store::open(*projector, order_system::orders_stream());
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(store) << "a projector opened the store for writing";
  EXPECT_TRUE(store.error().is(errc::server_error)) << store.error();
  EXPECT_NE(store.error().message.find("permissions violation"), std::string::npos)
      << store.error();
  EXPECT_LT(took, 1500ms + 1s) << store.error();

  // An event published straight from its connection is dropped: the stream does not change.
  auto& nc = jetsource::detail::state_of(*projector)->nc;
  ASSERT_EQ(natsConnection_PublishString(nc.get(), "orders.Order.1.o-x", "{}"), NATS_OK);
  ASSERT_EQ(natsConnection_FlushTimeout(nc.get(), 2000), NATS_OK);
  auto deployer = connect_as("deployer");
  ASSERT_TRUE(deployer);
  auto check = jetsource::event_store::open(*deployer, order_system::orders_stream());
  ASSERT_TRUE(check) << check.error();
  auto seq = check->last_sequence();
  ASSERT_TRUE(seq) << seq.error();
  EXPECT_EQ(*seq, 0u);
  EXPECT_GE(violations(), 2) << server_->log();
}

TEST_F(PermissionsTest, AWriterCannotDeleteTheStreamOrAConsumer) {
  auto writer = connect_as("writer", 1500ms);
  auto projector = connect_as("projector");
  ASSERT_TRUE(writer && projector);
  auto store = jetsource::event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  const auto last = write_orders(*store, 0, 1);
  std::string consumer;
  {
    auto live = jetsource::projector::start(*projector, order_system::order_summary(),
                                            projector_at("order_summary.db"));
    ASSERT_TRUE(live) << live.error();
    ASSERT_TRUE(live->wait_for(last, 10s));
    ASSERT_TRUE(live->stop());
    std::ifstream in(server_->dir.path() / "order_summary.db.consumer");
    std::getline(in, consumer);
  }
  ASSERT_FALSE(consumer.empty());

  jsCtx* js = jetsource::detail::state_of(*writer)->js.get();
  jsErrCode code{};
  const auto start = std::chrono::steady_clock::now();
  natsStatus s = js_DeleteConsumer(js, "ORDERS", consumer.c_str(), nullptr, &code);
  EXPECT_NE(s, NATS_OK);
  auto e = jetsource::detail::nats_error(s, "delete consumer " + consumer, code);
  EXPECT_TRUE(e.is(errc::server_error)) << e;
  EXPECT_NE(e.message.find("permissions violation"), std::string::npos) << e;
  EXPECT_NE(e.message.find("CONSUMER.DELETE.ORDERS"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms + 1s);
  EXPECT_NE(js_DeleteStream(js, "ORDERS", nullptr, &code), NATS_OK);

  // Both are still there, as the projector sees them.
  jsConsumerInfo* ci = nullptr;
  jsCtx* pjs = jetsource::detail::state_of(*projector)->js.get();
  EXPECT_EQ(js_GetConsumerInfo(&ci, pjs, "ORDERS", consumer.c_str(), nullptr, &code), NATS_OK);
  jsConsumerInfo_Destroy(ci);
  auto again = jetsource::event_store::open(*writer, writer_store());
  ASSERT_TRUE(again) << again.error();
  auto seq = again->last_sequence();
  ASSERT_TRUE(seq) << seq.error();
  EXPECT_EQ(*seq, last);
}

}  // namespace
