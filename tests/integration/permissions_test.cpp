// Least-privilege permissions (issue 15 §2): nats-server started with the roles configuration of
// docs/security.md (the text itself, passwords filled in). Each role does its work with only its
// permissions (no violation in the server's log), and the refusals hold: a projector cannot
// append, a writer cannot delete the stream or a consumer, and a refused request reaches the
// caller as a clear error within the request timeout (not a hang); so does a projector whose
// pull requests are refused. Reactor members and the key store: permissions_roles_test.cpp.
#include <jetsource/event_store.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/rebuild.hpp>
#include <jetsource/repository.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stream.hpp>

#include "nats/handles.hpp"
#include "permissions_fixture.hpp"

#include <chrono>
#include <fstream>
#include <thread>

using jetsource::errc;
using jetsource::test::PermissionsTest;
using jetsource::test::writer_store;
using namespace std::chrono_literals;

namespace {

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

// A projector that may create its consumer but not pull from it: the server drops each pull
// request and answers none, so without a check the fetcher asks again forever. It fails with a
// clear error instead, within a bounded time, and the status shows why.
TEST_F(PermissionsTest, AProjectorWhosePullsAreRefusedFailsWithAClearError) {
  start(jetsource::test::without(jetsource::test::roles_config(), "PROJECTOR",
                                 "$JS.API.CONSUMER.MSG.NEXT.ORDERS.*"));
  auto writer = connect_as("writer");
  auto projector = connect_as("projector");
  ASSERT_TRUE(writer && projector);
  auto store = jetsource::event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  const auto last = write_orders(*store, 0, 1);

  const auto started = std::chrono::steady_clock::now();
  auto live = jetsource::projector::start(*projector, order_system::order_summary(),
                                          projector_at("order_summary.db"));
  ASSERT_TRUE(live) << live.error();
  auto waited = live->wait_for(last, 20s);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(waited) << "a projector that may not pull applied the commits";
  EXPECT_TRUE(waited.error().is(errc::server_error)) << waited.error();
  EXPECT_NE(waited.error().message.find("permissions violation"), std::string::npos)
      << waited.error();
  EXPECT_NE(waited.error().message.find("$JS.API.CONSUMER.MSG.NEXT.ORDERS."), std::string::npos)
      << waited.error();
  EXPECT_LT(took, 5s) << "the refusal took " << (took / 1ms) << " ms to surface";
  auto failure = live->failure();
  ASSERT_TRUE(failure);
  EXPECT_TRUE(failure->is(errc::server_error)) << *failure;

  // Another process's status shows it (from the .failed file), with the server's words.
  auto op = connect_as("operator");
  ASSERT_TRUE(op);
  auto status =
      jetsource::read_status(*op, order_system::order_summary(), projector_at("order_summary.db"));
  ASSERT_TRUE(status) << status.error();
  EXPECT_EQ(status->state, "failed");
  EXPECT_NE(status->error.find("permissions violation"), std::string::npos) << status->error;
  EXPECT_TRUE(live->stop());
}

}  // namespace
