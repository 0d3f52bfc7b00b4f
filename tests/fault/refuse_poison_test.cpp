// Fault 7 of issue 10: the write side refuses what would poison the immutable history forever:
// ids and event fields that are not valid UTF-8 (a body labelled application/json that no JSON
// reader accepts), and commits whose headers exceed the server's 64 KB header limit.
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/repository.hpp>

#include <nats/nats.h>

#include <order_system/order.hpp>

#include "order_cli_fixture.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace {

using jetsource::errc;
using jetsource::test::outcome;

// Byte strings that are not UTF-8: a lone continuation byte, a truncated sequence, a bad
// continuation, an overlong '/', a UTF-16 surrogate, a code point past U+10FFFF, 0xFF.
const std::vector<std::string> not_utf8 = {"a\x80",    "ord-\xC3",      "x\xC3\x28",
                                           "\xC0\xAF", "s\xED\xA0\x80", "\xF4\x90\x80\x80",
                                           "c-\xFF",   "\xE2\x82",      "\xF0\x9F\x98"};

class RefusePoisonTest : public jetsource::test::order_cli_test {
 protected:
  jetsource::event_store& test_store() {
    if (!test_store_) test_store_.emplace(open_store());
    return *test_store_;
  }
  void TearDown() override {
    test_store_.reset();
    order_cli_test::TearDown();
  }
  jetsource::commit raw_commit(std::string id, std::string types, std::string body) {
    jetsource::commit c;
    c.aggregate_type = "Thing";
    c.aggregate_id = std::move(id);
    c.version = 1;
    c.event_types = std::move(types);
    c.body = std::move(body);
    return c;
  }
  std::optional<jetsource::event_store> test_store_;
};

// -- UTF-8 --------------------------------------------------------------------------------------

TEST_F(RefusePoisonTest, IdsThatAreNotUtf8AreInvalidIds) {
  for (const auto& id : not_utf8) {
    SCOPED_TRACE(testing::PrintToString(id));
    auto r = jetsource::validate_token("aggregate id", id);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(errc::invalid_id)) << r.error();
    EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos) << r.error();
    auto printed = nlohmann::json(r.error().message).dump();  // throws on invalid UTF-8
    EXPECT_FALSE(printed.empty());

    auto a = test_store().append(raw_commit(id, "Made", R"({"events":[]})"));
    ASSERT_FALSE(a);
    EXPECT_TRUE(a.error().is(errc::invalid_id)) << a.error();
  }
  for (std::string_view ok : {"ordre-\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x98\x80"})
    EXPECT_TRUE(jetsource::validate_token("aggregate id", ok)) << ok;
  EXPECT_EQ(test_store().last_sequence().value_or(99), 0u);  // nothing was stored
}

TEST_F(RefusePoisonTest, CodecRefusesAnEventWhoseJsonIsNotUtf8) {
  using registry = jetsource::event_registry<order_system::order::event>;
  std::vector<order_system::order::event> events{
      order_system::order_created{"c-1"},
      order_system::item_added{"sku-\xFF", 1, 100},
  };
  auto body = registry::encode(events);
  ASSERT_FALSE(body) << "encoded: " << *body;
  EXPECT_TRUE(body.error().is(errc::encode_failed)) << body.error();
  EXPECT_NE(body.error().message.find("ItemAdded"), std::string::npos) << body.error();
  EXPECT_NE(body.error().message.find("sku"), std::string::npos) << body.error();
  EXPECT_NO_THROW((void)nlohmann::json(body.error().message).dump());

  // Valid UTF-8 still round-trips.
  events[1] = order_system::item_added{"caf\xC3\xA9-\xE6\x97\xA5", 1, 100};
  auto good = registry::encode(events);
  ASSERT_TRUE(good) << good.error();
  auto back = registry::decode(*good);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(std::get<order_system::item_added>((*back)[1]).sku, "caf\xC3\xA9-\xE6\x97\xA5");
}

TEST_F(RefusePoisonTest, RepositoryStoresNothingWhenAFieldIsNotUtf8) {
  jetsource::repository<order_system::order> orders{store()};
  auto r = orders.execute("o-1", order_system::create_order{"c-\xFF", {}});
  ASSERT_FALSE(r) << "stored a customer id that is not UTF-8";
  EXPECT_TRUE(r.error().is(errc::encode_failed) || r.error().is(errc::invalid_argument))
      << r.error();
  EXPECT_NE(r.error().message.find("OrderCreated"), std::string::npos) << r.error();
  EXPECT_EQ(commits(), 0u);
}

TEST_F(RefusePoisonTest, StoreRefusesAJsonBodyThatIsNotUtf8) {
  auto a = test_store().append(
      raw_commit("t-1", "Made", "{\"events\":[{\"type\":\"Made\",\"v\":1,\"data\":\"\xFF\"}]}"));
  ASSERT_FALSE(a) << "stored a body that is not UTF-8";
  EXPECT_TRUE(a.error().is(errc::invalid_argument)) << a.error();
  EXPECT_NE(a.error().message.find("UTF-8"), std::string::npos) << a.error();
  EXPECT_EQ(test_store().last_sequence().value_or(99), 0u);
}

TEST_F(RefusePoisonTest, CliRefusesArgumentsThatAreNotUtf8BeforeAnyIo) {
  // Against a URL where no server listens: any I/O would end in exit code 1.
  const std::vector<std::vector<std::string>> commands = {
      {"order", "create", "--customer", "c-\xFF"},
      {"order", "create", "--customer", "c-1", "--order-id", "o-\xC3"},
      {"order", "create", "--customer", "c-1", "--item", "w\xED\xA0\x80:1:1"},
      {"order", "add-item", "o-1", "--sku", "\xC0\xAF", "--qty", "1", "--unit-price-cents", "1"},
      {"order", "remove-item", "o-1", "--sku", "s\x80"},
      {"order", "cancel", "o-1", "--reason", "too \xFF late"},
      {"order", "pay", "o-\xFF", "--amount-cents", "1"},
      {"query", "customer", "c-\xFF"},
  };
  for (const auto& args : commands) {
    SCOPED_TRACE(testing::PrintToString(args));
    outcome r = run_offline(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  }
}

// -- the header limit ---------------------------------------------------------------------------

constexpr std::size_t server_header_limit = 65535;  // nats-server 2.9.10: len(hdr) > MaxUint16

// The limit itself, on the real server with plain nats.c: a 65535-byte header block is stored,
// 65536 bytes is error 10097. (Our own figure must be this one.)
TEST_F(RefusePoisonTest, ServerHeaderLimitIs65535Bytes) {
  (void)test_store();
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  auto publish = [&](std::size_t header_bytes) {
    // "NATS/1.0\r\n" + "X-Pad: " + value + "\r\n" + "\r\n"
    std::string pad(header_bytes - 21, 'p');
    natsMsg* m = nullptr;
    EXPECT_EQ(natsMsg_Create(&m, "test.Raw.0.r-1", nullptr, "{}", 2), NATS_OK);
    EXPECT_EQ(natsMsgHeader_Set(m, "X-Pad", pad.c_str()), NATS_OK);
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsPubAck* ack = nullptr;
    natsStatus s = js_PublishMsg(&ack, js, m, nullptr, &jerr);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    return std::pair{s, static_cast<int>(jerr)};
  };
  auto at_limit = publish(server_header_limit);
  auto over = publish(server_header_limit + 1);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  EXPECT_EQ(at_limit.first, NATS_OK);
  EXPECT_NE(over.first, NATS_OK);
  EXPECT_EQ(over.second, 10097);
}

TEST_F(RefusePoisonTest, CommitWithHeadersOverTheLimitIsRefusedBeforeSending) {
  auto types = [](std::size_t n) {  // Es-Events of exactly n bytes: "Made,Made,...,MadeAAA"
    std::string s;
    while (s.size() + 5 <= n) s += s.empty() ? "Made" : ",Made";
    return s + std::string(n - s.size(), 'A');
  };
  auto big = test_store().append(raw_commit("t-1", types(70'000), R"({"events":[]})"));
  ASSERT_FALSE(big) << "appended";
  EXPECT_TRUE(big.error().is(errc::payload_too_large)) << big.error();
  EXPECT_NE(big.error().message.find("65535"), std::string::npos) << big.error();
  EXPECT_EQ(test_store().last_sequence().value_or(99), 0u);

  // The message says the header size: trimming Es-Events by the excess lands exactly on the
  // limit, which the server accepts; one byte more is refused by us, not by the server.
  auto& m = big.error().message;
  auto pos = m.find("headers are ");
  ASSERT_NE(pos, std::string::npos) << m;
  std::size_t size = std::stoul(m.substr(pos + 12));
  std::size_t fits = 70'000 - (size - server_header_limit);
  auto over = test_store().append(raw_commit("t-2", types(fits + 1), R"({"events":[]})"));
  ASSERT_FALSE(over);
  EXPECT_TRUE(over.error().is(errc::payload_too_large)) << over.error();
  auto at = test_store().append(raw_commit("t-3", types(fits), R"({"events":[]})"));
  EXPECT_TRUE(at) << at.error();
  EXPECT_EQ(test_store().last_sequence().value_or(99), at ? 1u : 0u);
}

TEST_F(RefusePoisonTest, CliOrderWithTooManyItemsForOneCommitExits2) {
  std::vector<std::string> args{"order", "create", "--customer", "c-1", "--order-id", "o-big"};
  for (int i = 0; i < 7000; ++i) args.insert(args.end(), {"--item", fmt::format("s{}:1:1", i)});
  outcome r = run(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("payload_too_large"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("headers"), std::string::npos) << r.err;
  EXPECT_EQ(commits(), 0u);
}

}  // namespace
