// The key store of personal data against real nats-servers: keys created on first write and
// cached, forget() (placeholder afterwards, new personal data refused, other subjects untouched),
// and a key store outage: a retryable error and nothing appended.
#include <jetsource/personal.hpp>
#include <jetsource/repository.hpp>

#include <order_system/order.hpp>

#include "nats/handles.hpp"
#include "nats_fixture.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace jetsource::test {
namespace {

using order_system::create_order;
using order_system::order;
using order_system::order_created;
using registry = event_registry<order::event>;

std::string slurp_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using detail::js_ptr;
using detail::msg_ptr;

class key_store_test : public nats_test {
 protected:
  key_store open_keys(const connection& conn, key_store_options o = {}) {
    o.stream = "TEST";
    auto k = key_store::open(conn, o);
    EXPECT_TRUE(k) << k.error();
    if (!k) std::abort();
    return std::move(k).value();
  }
  // The OrderCreated of an order as stored, decoded now.
  result<order_created> created_of(event_store& store, const std::string& id) {
    JETSOURCE_TRY(log, store.read(order::type_name, id));
    if (log.commits.empty()) return make_error(errc::not_found, "no commit");
    JETSOURCE_TRY(events, registry::decode(log.commits.front().body));
    return std::get<order_created>(events.front());
  }
};

TEST_F(key_store_test, KeysAreMadeOnFirstWriteCachedAndForgotten) {
  auto store = open_store();
  auto keys = open_keys(*conn_);
  EXPECT_EQ(keys.bucket(), "jsk-TEST");
  key_scope scope(keys);
  repository<order> orders{store};
  ASSERT_TRUE(orders.execute("o-1", create_order{"c-1", {}, "Ann", "ann@example.com"}));
  ASSERT_TRUE(orders.execute("o-2", create_order{"c-2", {}, "Bob", "bob@example.com"}));
  ASSERT_TRUE(orders.execute("o-3", create_order{"c-1", {}, "Ann B.", std::nullopt}));

  auto before = keys.cache_stats();
  auto c1 = created_of(store, "o-1");
  ASSERT_TRUE(c1) << c1.error();
  EXPECT_EQ(c1->customer_name.value(), "Ann");
  EXPECT_EQ(keys.cache_stats().misses, before.misses);  // cached since the writes
  EXPECT_GT(keys.cache_stats().hits, before.hits);

  // The raw commit holds no plaintext.
  auto raw = store.read(order::type_name, "o-1");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->commits.front().body.find("ann@example.com"), std::string::npos);

  auto forgot = keys.forget("c-1");
  ASSERT_TRUE(forgot) << forgot.error();
  ASSERT_TRUE(keys.forget("c-1"));  // idempotent
  EXPECT_TRUE(keys.forgotten("c-1").value());
  EXPECT_FALSE(keys.forgotten("c-2").value());
  for (const char* id : {"o-1", "o-3"}) {
    auto e = created_of(store, id);
    ASSERT_TRUE(e) << e.error();
    EXPECT_EQ(e->customer_id, "c-1");
    EXPECT_TRUE(e->customer_name.forgotten());
    EXPECT_FALSE(e->customer_name.has_value());
  }
  // Another process (a fresh store: no cache) sees it forgotten too, and c-2 unchanged.
  auto other = open_keys(*conn_);
  {
    key_scope s2(other);
    auto e = created_of(store, "o-1");
    ASSERT_TRUE(e) << e.error();
    EXPECT_TRUE(e->customer_email.forgotten());
    auto b = created_of(store, "o-2");
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->customer_email.value(), "bob@example.com");
  }
  // The aggregate still loads and works; new personal data of c-1 is refused, nothing stored.
  ASSERT_TRUE(orders.load("o-1"));
  auto head = store.last_sequence().value();
  auto again = orders.execute("o-4", create_order{"c-1", {}, "Ann", std::nullopt});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::rejected);
  EXPECT_NE(again.error().message.find("forgotten"), std::string::npos) << again.error().message;
  EXPECT_EQ(store.last_sequence().value(), head);
  // ... also by a process that had never seen c-1 (the purge marker, not the cache, says so).
  key_scope s3(other);
  auto fresh = open_keys(*conn_);
  key_scope s4(fresh);
  auto refused = orders.execute("o-5", create_order{"c-1", {}, std::nullopt, "a@b.c"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::rejected);
  EXPECT_TRUE(orders.execute("o-6", create_order{"c-1", {}, std::nullopt, std::nullopt}));
}

TEST_F(key_store_test, AForgottenKeyIsErasedFromTheServersDiskNotJustHidden) {
  auto store = open_store();
  auto keys = open_keys(*conn_);
  key_scope scope(keys);
  repository<order> orders{store};
  ASSERT_TRUE(orders.execute("o-1", create_order{"c-1", {}, "Ann", std::nullopt}));
  // The key: the first message of the bucket's stream.
  js_ptr js;
  {
    jsCtx* raw = nullptr;
    ASSERT_EQ(natsConnection_JetStream(&raw, detail::state_of(*conn_)->nc.get(), nullptr), NATS_OK);
    js.reset(raw);
  }
  natsMsg* raw = nullptr;
  ASSERT_EQ(js_GetMsg(&raw, js.get(), "KV_jsk-TEST", 1, nullptr, nullptr), NATS_OK);
  msg_ptr key_msg(raw);
  const std::string key(natsMsg_GetData(key_msg.get()), natsMsg_GetDataLength(key_msg.get()));
  ASSERT_EQ(key.size(), 32u);
  auto key_on_disk = [&] {
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir_.path() / "nats"))
      if (f.is_regular_file() && slurp_bytes(f.path()).find(key) != std::string::npos) return true;
    return false;
  };
  ASSERT_TRUE(key_on_disk());  // the check can see it (file store, written through)

  auto forgot = keys.forget("c-1");
  ASSERT_TRUE(forgot) << forgot.error();
  raw = nullptr;
  EXPECT_EQ(js_GetMsg(&raw, js.get(), "KV_jsk-TEST", 1, nullptr, nullptr), NATS_NOT_FOUND);
  natsMsg_Destroy(raw);
  EXPECT_FALSE(key_on_disk());     // overwritten (js_EraseMsg), not only marked deleted
  auto fresh = open_keys(*conn_);  // the purge marker says "forgotten" to every process
  EXPECT_TRUE(fresh.forgotten("c-1").value());
}

TEST_F(key_store_test, AKeyStoreOutageIsRetryableAndNothingIsAppended) {
  // The key store on a server of its own, which then stops: the event stream keeps working.
  temp_dir other_dir;
  embedded_server_options so;
  so.data_dir = other_dir.path() / "nats";
  auto key_server = embedded_server::start(so);
  ASSERT_TRUE(key_server) << key_server.error();
  connection_options co;
  co.urls = {key_server->url()};
  co.reconnect_wait = std::chrono::milliseconds{50};
  co.request_timeout = std::chrono::milliseconds{500};
  auto key_conn = connection::connect(co);
  ASSERT_TRUE(key_conn) << key_conn.error();
  auto keys = open_keys(
      *key_conn, {.cache_ttl = std::chrono::seconds{0}, .timeout = std::chrono::milliseconds{500}});
  key_scope scope(keys);

  auto store = open_store();
  repository<order> orders{store};
  ASSERT_TRUE(orders.execute("o-1", create_order{"c-1", {}, "Ann", std::nullopt}));
  const auto head = store.last_sequence().value();

  ASSERT_TRUE(key_server->stop());
  auto r = orders.execute("o-2", create_order{"c-2", {}, "Bob", std::nullopt});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::unreachable) || r.error().is(errc::timeout)) << r.error();
  EXPECT_EQ(store.last_sequence().value(), head);  // never a plaintext write, no write at all
  auto read = created_of(store, "o-1");            // cache_ttl 0: the key must be fetched
  ASSERT_FALSE(read);
  EXPECT_TRUE(read.error().is(errc::unreachable) || read.error().is(errc::timeout)) << read.error();
  // Orders without personal data are not affected.
  EXPECT_TRUE(orders.execute("o-3", create_order{"c-3", {}, std::nullopt, std::nullopt}));
}

// Processes that open the key store at once (serve and a command, each the first on a new
// stream) all create its bucket: the server tells a late creator either that the name exists
// or that the subjects overlap (with the stream the first one just made). Both mean "made
// meanwhile"; it was a server_error ("subjects overlap") for the second.
TEST_F(key_store_test, ProcessesOpeningTheKeyStoreAtOnceAllSucceed) {
  // The window is a few instructions in the server; a busy machine opens it (with two shell
  // loops spinning beside it, 1 run in 5 failed without the fix; `serve` beside a command, 3 in
  // 22 runs of OrderCliReadTest.ServeApplies...).
  constexpr int rounds = 50, openers = 6;
  std::vector<connection> conns;
  for (int i = 0; i < openers; ++i) {
    auto c = connection::connect({.urls = {server_->url()}});
    ASSERT_TRUE(c) << c.error();
    conns.push_back(std::move(c).value());
  }
  int failed = 0;
  std::string first_error;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::thread> threads;
    std::vector<std::optional<error>> errors(openers);
    for (int i = 0; i < openers; ++i)
      threads.emplace_back([&, i] {
        auto k = key_store::open(conns[static_cast<std::size_t>(i)],
                                 {.stream = "AT_ONCE_" + std::to_string(round)});
        if (!k) errors[static_cast<std::size_t>(i)] = k.error();
      });
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) {
        if (failed++ == 0) first_error = to_string(*e);
      }
  }
  EXPECT_EQ(failed, 0) << "of " << rounds * openers << " opens; the first: " << first_error;
}

}  // namespace
}  // namespace jetsource::test
