// Least-privilege permissions (issue 15 §2), continued: the reactor member and the key store of
// personal fields (crypto-shredding), with nats-server started from the roles configuration of
// docs/security.md. A reactor member joins its group, handles events (decoding personal fields)
// and checkpoints with only its rights, and cannot append or delete the stream; a writer, a
// projector and an operator encode, decode and forget personal data with only theirs; a writer
// that may not create keys gets a clear error, and no plaintext reaches the stream.
#include <jetsource/personal.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/reactor.hpp>

#include <order_system/read_models.hpp>

#include "nats/handles.hpp"
#include "permissions_fixture.hpp"
#include "reactor_fixture.hpp"

#include <atomic>
#include <map>
#include <mutex>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;
using order_system::create_order;

// The reactor the REACTOR role of docs/security.md is for: "inventory" on ORDERS (here it only
// records what it handles, and the customer's name as its handler decodes it).
struct recording {
  recorder handled;
  std::atomic<bool> fail_o1{false};  // the handler fails on o-1's first item (it parks)
  std::mutex mutex;
  std::map<std::string, std::string> names;  // order id -> customer name ("" when none)
};

reactor inventory(recording& rec) {
  auto h = [&rec](reaction_context& cx) -> result<void> {
    rec.handled.add("member", cx);
    return success();
  };
  return reactor("inventory")
      .follow<order_system::order>(order_system::orders_stream())
      .on<order_system::order_created>([&rec, h](reaction_context& cx, const auto& e) {
        {
          std::lock_guard lk(rec.mutex);
          rec.names[std::string(cx.aggregate_id())] =
              e.customer_name.has_value() ? e.customer_name.value() : "";
        }
        return h(cx);
      })
      .on<order_system::item_added>([&rec, h](reaction_context& cx, const auto&) -> result<void> {
        if (rec.fail_o1.load() && cx.aggregate_id() == "o-1" && cx.version() == 2)
          return error{errc::io, "the sink is down"};
        return h(cx);
      })
      .on<order_system::order_placed>([h](reaction_context& cx, const auto&) { return h(cx); });
}

reactor_options member_options() {
  reactor_options o;
  o.stream = "ORDERS";
  o.instance = "one";
  o.lease = 1500ms;
  o.metrics = nullptr;
  o.retry.attempts = 1;  // a failing handler parks its aggregate at once
  return o;
}

// Orders o-<first>.. for customer `customer` with name `name`: create, 4 items, place (6 events).
std::uint64_t write_named(event_store& store, int first, int count, const std::string& customer,
                          const std::string& name) {
  repository<order_system::order> repo{store};
  std::uint64_t last = 0;
  for (int i = first; i < first + count; ++i) {
    const std::string id = "o-" + std::to_string(i);
    auto r = repo.execute(id, create_order{customer, {}, name, name + "@example.com"});
    EXPECT_TRUE(r) << r.error();
    for (int k = 0; k < 4; ++k)
      EXPECT_TRUE(repo.execute(id, order_system::add_item{"sku-" + std::to_string(k), 1, 100}));
    auto placed = repo.execute(id, order_system::place_order{});
    EXPECT_TRUE(placed) << placed.error();
    if (placed) last = placed->sequence;
  }
  return last;
}

class PermissionsRolesTest : public PermissionsTest {
 protected:
  void SetUp() override {
    PermissionsTest::SetUp();
    if (HasFatalFailure()) return;
    make_key_store();
  }
  void TearDown() override { key_store::uninstall(); }

  // The deployer creates the key store's bucket once.
  void make_key_store() {
    auto deployer = connect_as("deployer");
    ASSERT_TRUE(deployer);
    auto keys = key_store::open(*deployer, {.stream = "ORDERS"});
    ASSERT_TRUE(keys) << keys.error();
  }
  std::optional<key_store> keys_as(const connection& conn,
                                   std::chrono::milliseconds timeout = 5000ms) {
    auto k = key_store::open(conn, {.stream = "ORDERS", .timeout = timeout});
    EXPECT_TRUE(k) << k.error();
    if (!k) return std::nullopt;
    return std::move(k).value();
  }
  // Everything the stream holds, as one string (to look for plaintext).
  std::string stream_bytes(event_store& store) {
    std::string all;
    auto last = store.last_sequence();
    EXPECT_TRUE(last) << last.error();
    for (int i = 0; last && i < 10; ++i) {
      auto log = store.read(order_system::order::type_name, "o-" + std::to_string(i));
      if (!log) continue;
      for (const auto& c : log->commits) all += c.body;
    }
    return all;
  }
};

TEST_F(PermissionsRolesTest, AReactorMemberWorksWithOnlyItsPermissions) {
  auto writer = connect_as("writer");
  auto member_conn = connect_as("reactor");
  ASSERT_TRUE(writer && member_conn);
  auto store = event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  auto writer_keys = keys_as(*writer);
  auto member_keys = keys_as(*member_conn);
  ASSERT_TRUE(writer_keys && member_keys);
  member_keys->install();  // the member's workers decode with the member's rights
  std::uint64_t last = 0;
  {
    key_scope scope(*writer_keys);
    last = write_named(*store, 0, 2, "c-1", "Ann");
  }

  recording rec;
  rec.fail_o1 = true;
  auto m = reactor_member::start(*member_conn, inventory(rec), member_options());
  ASSERT_TRUE(m) << m.error();
  // o-1 parks on its first item; a retry request (as `reactors retry` makes) has the member
  // read o-1's events again from the stream and handle them.
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*member_conn, "ORDERS", "inventory");
        return st && st->parked.size() == 1 && rec.handled.size() >= 7;
      },
      30000ms))
      << rec.handled.size() << "\n"
      << server_->log();
  rec.fail_o1 = false;
  auto retried = request_reactor_retry(*member_conn, "ORDERS", "inventory", "Order", "o-1");
  ASSERT_TRUE(retried) << retried.error();
  ASSERT_TRUE(wait_until([&] { return rec.handled.size() >= 12; }, 30000ms))
      << rec.handled.size() << "\n"
      << server_->log();
  EXPECT_EQ(first_handling_violation(rec.handled.events()), "");
  {
    std::lock_guard lk(rec.mutex);
    EXPECT_EQ(rec.names["o-0"], "Ann");  // decoded with the member's key-store rights
    EXPECT_EQ(rec.names["o-1"], "Ann");
  }
  // Its checkpoints reach the group's bucket (with the lease renewals).
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*member_conn, "ORDERS", "inventory");
        return st && st->position == last;
      },
      10000ms));
  ASSERT_TRUE(m->stop());
  auto after = read_reactor_status(*member_conn, "ORDERS", "inventory");
  ASSERT_TRUE(after) << after.error();
  EXPECT_TRUE(after->members.empty());
  EXPECT_EQ(after->position, last);

  // It joins again and goes on from its checkpoint: only the new order's events.
  std::uint64_t more = 0;
  {
    key_scope scope(*writer_keys);
    more = write_named(*store, 2, 1, "c-2", "Bob");
  }
  auto again = reactor_member::start(*member_conn, inventory(rec), member_options());
  ASSERT_TRUE(again) << again.error();
  ASSERT_TRUE(wait_until([&] { return rec.handled.size() >= 18; }, 30000ms)) << rec.handled.size();
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*member_conn, "ORDERS", "inventory");
        return st && st->position == more;
      },
      10000ms));
  ASSERT_TRUE(again->stop());
  EXPECT_EQ(rec.handled.size(), 18u) << "an event was handled twice after a graceful stop";
  {
    std::lock_guard lk(rec.mutex);
    EXPECT_EQ(rec.names["o-2"], "Bob");
  }
  EXPECT_EQ(violations(), 0) << server_->log();
}

TEST_F(PermissionsRolesTest, AReactorMemberCannotAppendNorDeleteTheStream) {
  auto member_conn = connect_as("reactor", 1500ms);
  ASSERT_TRUE(member_conn);
  // It reads the stream (a parked aggregate's events) but its appends are refused: a clear
  // error within the ack timeout, not retried.
  auto so = order_system::orders_stream();
  // An append waits this long for its ack: longer than the request timeout and its margin,
  // after which only the connection's own record of the refusal can explain the timeout.
  so.ack_timeout = 4000ms;
  auto opened = event_store::open(*member_conn, so);
  ASSERT_TRUE(opened) << opened.error();
  repository<order_system::order> repo{*opened};
  const auto start = std::chrono::steady_clock::now();
  auto appended = repo.execute("o-x", create_order{.customer_id = "c-1"});
  ASSERT_FALSE(appended) << "a reactor member appended";
  EXPECT_TRUE(appended.error().is(errc::server_error)) << appended.error();
  EXPECT_NE(appended.error().message.find("permissions violation"), std::string::npos)
      << appended.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4000ms + 1s);

  auto& c = *detail::state_of(*member_conn);
  ASSERT_EQ(natsConnection_PublishString(c.nc.get(), "orders.Order.1.o-x", "{}"), NATS_OK);
  ASSERT_EQ(natsConnection_FlushTimeout(c.nc.get(), 2000), NATS_OK);
  jsErrCode code{};
  natsStatus s = js_DeleteStream(c.js.get(), "ORDERS", nullptr, &code);
  EXPECT_NE(s, NATS_OK);
  auto e = detail::nats_error(s, "delete stream ORDERS", code);
  EXPECT_TRUE(e.is(errc::server_error)) << e;
  EXPECT_NE(e.message.find("STREAM.DELETE.ORDERS"), std::string::npos) << e;

  auto deployer = connect_as("deployer");
  ASSERT_TRUE(deployer);
  auto check = event_store::open(*deployer, order_system::orders_stream());
  ASSERT_TRUE(check) << check.error();  // the stream is still there ...
  auto seq = check->last_sequence();
  ASSERT_TRUE(seq) << seq.error();
  EXPECT_EQ(*seq, 0u);  // ... and unchanged
  EXPECT_GE(violations(), 3) << server_->log();
}

// Writer, projector and operator with their documented key-store rights: personal fields are
// encrypted at append, decoded into a read model, and forgotten; the server logs no violation.
TEST_F(PermissionsRolesTest, PersonalFieldsWorkWithOnlyTheKeyStoreRights) {
  auto writer = connect_as("writer");
  auto projector = connect_as("projector");
  auto op = connect_as("operator");
  ASSERT_TRUE(writer && projector && op);
  auto store = event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  auto writer_keys = keys_as(*writer);
  ASSERT_TRUE(writer_keys);
  std::uint64_t last = 0;
  {
    key_scope scope(*writer_keys);
    write_named(*store, 0, 1, "c-1", "Ann");
    last = write_named(*store, 1, 1, "c-2", "Bob");
  }
  const auto raw = stream_bytes(*store);
  EXPECT_FALSE(raw.empty());
  EXPECT_EQ(raw.find("Ann"), std::string::npos) << "plaintext on the stream";

  auto projector_keys = keys_as(*projector);
  ASSERT_TRUE(projector_keys);
  projector_keys->install();  // the projector's workers decode with the projector's rights
  auto live = projector::start(*projector, order_system::customer_stats(),
                               projector_at("customer_stats.db"));
  ASSERT_TRUE(live) << live.error();
  ASSERT_TRUE(live->wait_for(last, 10s));
  ASSERT_TRUE(live->stop());
  {
    auto db = open_read_model(server_->dir.path() / "customer_stats.db");
    ASSERT_TRUE(db) << db.error();
    auto name = db->query_one("SELECT name FROM customers WHERE customer_id = ?1", "c-1");
    ASSERT_TRUE(name && *name) << (name ? "no row" : name.error().message);
    EXPECT_EQ((*name)->get<std::string>(0), "Ann");
  }

  // The operator forgets c-1; a writer (fresh cache) may then store no personal data for it.
  auto op_keys = keys_as(*op);
  ASSERT_TRUE(op_keys);
  auto forgot = op_keys->forget("c-1");
  ASSERT_TRUE(forgot) << forgot.error();
  auto forgotten = op_keys->forgotten("c-1");
  ASSERT_TRUE(forgotten) << forgotten.error();
  EXPECT_TRUE(*forgotten);
  auto fresh_keys = keys_as(*writer);
  ASSERT_TRUE(fresh_keys);
  key_scope scope(*fresh_keys);
  repository<order_system::order> repo{*store};
  auto refused = repo.execute("o-9", create_order{"c-1", {}, "Ann", std::nullopt});
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::rejected)) << refused.error();
  EXPECT_TRUE(repo.execute("o-10", create_order{"c-2", {}, "Bob", std::nullopt}));
  EXPECT_EQ(violations(), 0) << server_->log();
}

// A writer that may read keys but not create one: appending a new subject's personal data is a
// clear error within the request timeout, and nothing (no plaintext) is appended. A writer with
// no key store at all is refused too.
TEST_F(PermissionsRolesTest, AWriterWithoutKeyStoreRightsGetsAClearErrorNotAPlaintextWrite) {
  start(without(roles_config(), "WRITER", "$KV.jsk-ORDERS.>"));
  make_key_store();
  auto writer = connect_as("writer", 1500ms);
  ASSERT_TRUE(writer);
  auto store = event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  repository<order_system::order> repo{*store};
  {
    auto no_keys = repo.execute("o-0", create_order{"c-1", {}, "Ann", std::nullopt});
    ASSERT_FALSE(no_keys) << "personal data appended without a key store";
    EXPECT_NE(no_keys.error().message.find("key store"), std::string::npos) << no_keys.error();
  }
  auto keys = keys_as(*writer, 1500ms);  // its requests wait as long as the connection's
  ASSERT_TRUE(keys);
  key_scope scope(*keys);
  const auto start = std::chrono::steady_clock::now();
  auto refused = repo.execute("o-0", create_order{"c-1", {}, "Ann", std::nullopt});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(refused) << "personal data appended without a key";
  EXPECT_TRUE(refused.error().is(errc::server_error)) << refused.error();
  EXPECT_NE(refused.error().message.find("permissions violation"), std::string::npos)
      << refused.error();
  EXPECT_NE(refused.error().message.find("$KV.jsk-ORDERS."), std::string::npos) << refused.error();
  EXPECT_LT(took, 1500ms + 1s);
  auto seq = store->last_sequence();
  ASSERT_TRUE(seq) << seq.error();
  EXPECT_EQ(*seq, 0u) << "something was appended";
  // Data without personal fields still goes through.
  EXPECT_TRUE(repo.execute("o-1", create_order{.customer_id = "c-1"}));
}

// The documented roles plus `admin`, a user with every right (to show another member takes over).
std::string with_admin(std::string config) {
  const std::string users = "  users = [\n";
  auto at = config.find(users);
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos)
    config.insert(at + users.size(), "    { user: admin, password: \"pw-ADMIN\" }\n");
  return config;
}

// A member whose pulls the server refuses would ask again forever (the server answers none):
// it fails with a clear error instead, and hands its partitions over, so another member of the
// group (here one with every right) handles every event.
TEST_F(PermissionsRolesTest, AReactorMemberWhosePullsAreRefusedFailsAndHandsItsPartitionsOver) {
  start(with_admin(without(roles_config(), "REACTOR", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.*")));
  make_key_store();
  auto writer = connect_as("writer");
  auto member_conn = connect_as("reactor");
  auto admin = connect_as("admin");
  ASSERT_TRUE(writer && member_conn && admin);
  auto store = event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  write_orders(*store, 0, 2);  // 12 events

  recording rec;
  const auto started = std::chrono::steady_clock::now();
  auto m = reactor_member::start(*member_conn, inventory(rec), member_options());
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until([&] { return m->failure().has_value(); }, 20000ms))
      << "a member that may not pull reported nothing\n"
      << server_->log();
  const auto took = std::chrono::steady_clock::now() - started;
  auto failure = *m->failure();
  EXPECT_TRUE(failure.is(errc::server_error)) << failure;
  EXPECT_NE(failure.message.find("permissions violation"), std::string::npos) << failure;
  EXPECT_NE(failure.message.find("pull from consumer"), std::string::npos) << failure;
  EXPECT_NE(failure.message.find("$JS.API.CONSUMER.MSG.NEXT.ORDERS."), std::string::npos)
      << failure;
  // Its lease keeper's first pass, the cursor's creation, one pull: well within a lease or two.
  EXPECT_LT(took, 8s) << "the refusal took " << (took / 1ms) << " ms to surface";
  EXPECT_EQ(rec.handled.size(), 0u);

  // It left the group without stop(): no member record, no partitions held.
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*admin, "ORDERS", "inventory");
        return st && st->members.empty();
      },
      10000ms));
  EXPECT_TRUE(m->partitions().empty());
  auto other_options = member_options();
  other_options.instance = "two";
  auto other = reactor_member::start(*admin, inventory(rec), other_options);
  ASSERT_TRUE(other) << other.error();
  ASSERT_TRUE(wait_until([&] { return rec.handled.size() >= 12; }, 30000ms)) << rec.handled.size();
  EXPECT_EQ(first_handling_violation(rec.handled.events()), "");
  EXPECT_FALSE(other->failure().has_value());
  EXPECT_TRUE(m->stop());
  EXPECT_TRUE(other->stop());
  EXPECT_EQ(rec.handled.size(), 12u);
}

// The REACTOR role is for ordered members (their cursor acks nothing). A queue-mode member acks
// each event on the shared durable: with that role its acks are refused, and it says so (the
// server would otherwise deliver every event again after AckWait, forever).
TEST_F(PermissionsRolesTest, AQueueMemberWhoseAcksAreRefusedFailsWithAClearError) {
  auto writer = connect_as("writer");
  auto member_conn = connect_as("reactor");
  ASSERT_TRUE(writer && member_conn);
  auto store = event_store::open(*writer, writer_store());
  ASSERT_TRUE(store) << store.error();
  write_orders(*store, 0, 1);

  recording rec;
  auto o = member_options();
  o.mode = delivery::queue;
  auto m = reactor_member::start(*member_conn, inventory(rec), o);
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until([&] { return m->failure().has_value(); }, 20000ms))
      << "a queue member whose acks are refused reported nothing\n"
      << server_->log();
  auto failure = *m->failure();
  EXPECT_TRUE(failure.is(errc::server_error)) << failure;
  EXPECT_NE(failure.message.find("ack to consumer jetsource-r-inventory-queue"), std::string::npos)
      << failure;
  EXPECT_NE(failure.message.find("$JS.ACK.ORDERS.jetsource-r-inventory-queue."), std::string::npos)
      << failure;
  EXPECT_TRUE(m->stop());
}

}  // namespace
}  // namespace jetsource::test
