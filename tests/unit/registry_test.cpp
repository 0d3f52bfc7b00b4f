// The event registry: upcasting old schema versions, unknown types and versions, corrupted
// payloads (always an error result, never a crash), and the compile-time concepts.
#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "test_domain.hpp"

namespace {

using namespace bank;
using jetsource::errc;
using registry = jetsource::event_registry<account::event>;

// -- compile-time checks ---------------------------------------------------------------------

struct no_type_name {  // serialisable, but has no wire name: not an event
  int x = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(x));
  }
};

struct half_account {  // misses apply(const withdrawn&): not an aggregate
  static constexpr std::string_view type_name = "Half";
  using event = std::variant<account_opened, withdrawn>;
  void apply(const account_opened&) {}
};

struct stateless_account {  // an aggregate, but without serialize: no snapshots
  static constexpr std::string_view type_name = "Stateless";
  using event = std::variant<account_opened>;
  void apply(const account_opened&) {}
};

static_assert(jetsource::aggregate<account>);
static_assert(jetsource::snapshottable<account>);
static_assert(!jetsource::event<no_type_name>);
static_assert(!jetsource::event<int>);
static_assert(jetsource::event<account_opened> && jetsource::event<deposited> &&
              jetsource::event<deposited_v1> && jetsource::event<withdrawn> &&
              jetsource::event<account_closed>);
static_assert(jetsource::upcastable<deposited>);
static_assert(!jetsource::upcastable<withdrawn>);
static_assert(!jetsource::upcastable<deposited_v1>);
static_assert(jetsource::schema_version_of<deposited>() == 2);
static_assert(jetsource::schema_version_of<deposited_v1>() == 1);
static_assert(jetsource::schema_version_of<withdrawn>() == 1);
static_assert(jetsource::event_variant<account::event>);
static_assert(!jetsource::event_variant<std::variant<account_opened, no_type_name>>);
static_assert(!jetsource::event_variant<std::variant<int>>);
static_assert(!jetsource::aggregate<half_account>);
static_assert(jetsource::aggregate<stateless_account>);
static_assert(!jetsource::snapshottable<stateless_account>);
static_assert(jetsource::command_for<deposit, account>);
static_assert(jetsource::command_for<close_account, account>);
static_assert(!jetsource::command_for<int, account>);

// -- helpers ---------------------------------------------------------------------------------

std::string body_of(std::string_view one_event) {
  return std::string(R"({"events":[)") + std::string(one_event) + "]}";
}

jetsource::error decode_error(std::string_view body) {
  auto r = registry::decode(body);
  EXPECT_FALSE(r) << "decoded " << r.value().size() << " event(s) from: " << body;
  return r ? jetsource::error{} : r.error();
}

// -- events without fields -------------------------------------------------------------------

struct pinged {  // no fields and no serialize: jetsource serialises it as "data":{}
  static constexpr std::string_view type_name = "Pinged";
};
struct stamped {  // no fields, but a serialize of its own: that one is used
  static constexpr std::string_view type_name = "Stamped";
  template <class A>
  void serialize(A& a) {
    a(cereal::make_nvp("stamp", std::string("own")));
  }
};
static_assert(jetsource::detail::field_less_event<pinged>);
static_assert(!jetsource::detail::field_less_event<stamped>);
static_assert(!jetsource::detail::field_less_event<withdrawn>);  // has fields

TEST(RegistryTest, AnEventWithoutFieldsNeedsNoSerialize) {
  using pings = jetsource::event_registry<std::variant<pinged, withdrawn, stamped>>;
  std::vector<pings::variant> events{pinged{}, withdrawn{7}, pinged{}};
  auto body = pings::encode(events);
  ASSERT_TRUE(body) << body.error();
  EXPECT_EQ(*body, R"({"events":[{"type":"Pinged","v":1,"data":{}},)"
                   R"({"type":"Withdrawn","v":1,"data":{"amount_cents":7}},)"
                   R"({"type":"Pinged","v":1,"data":{}}]})");
  auto back = pings::decode(*body);
  ASSERT_TRUE(back) << back.error();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_TRUE(std::holds_alternative<pinged>((*back)[0]));
  EXPECT_EQ(std::get<withdrawn>((*back)[1]).amount_cents, 7);
  EXPECT_TRUE(std::holds_alternative<pinged>((*back)[2]));
  std::vector<pings::variant> own{stamped{}};
  EXPECT_EQ(*pings::encode(own), R"({"events":[{"type":"Stamped","v":1,"data":{"stamp":"own"}}]})");
}

// -- upcasting -------------------------------------------------------------------------------

TEST(RegistryTest, UpcastsSchemaOneDeposits) {
  auto r = registry::decode(body_of(R"({"type":"Deposited","v":1,"data":{"amount":7}})"));
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r.value().size(), 1u);
  ASSERT_TRUE(std::holds_alternative<deposited>(r.value()[0]));
  const auto& d = std::get<deposited>(r.value()[0]);
  EXPECT_EQ(d.amount_cents, 700);
  EXPECT_EQ(d.note, "(v1)");
}

TEST(RegistryTest, OldAndCurrentSchemasMixInOneCommit) {
  auto r =
      registry::decode(R"({"events":[)"
                       R"({"type":"AccountOpened","v":1,"data":{"owner":"ada"}},)"
                       R"({"type":"Deposited","v":1,"data":{"amount":-2}},)"
                       R"({"type":"Deposited","v":2,"data":{"amount_cents":7,"note":"now"}}]})");
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(std::get<deposited>(r.value()[1]).amount_cents, -200);
  EXPECT_EQ(std::get<deposited>(r.value()[1]).note, "(v1)");
  EXPECT_EQ(std::get<deposited>(r.value()[2]).amount_cents, 7);  // current schema: not upcast
  EXPECT_EQ(std::get<deposited>(r.value()[2]).note, "now");
}

TEST(RegistryTest, CurrentSchemaIsWrittenOnEncode) {
  auto body = registry::encode(std::vector<account::event>{deposited{700, "(v1)"}});
  ASSERT_TRUE(body) << body.error();
  EXPECT_NE(body.value().find(R"("type":"Deposited","v":2)"), std::string::npos) << body.value();
}

// -- unknown types and versions --------------------------------------------------------------

TEST(RegistryTest, UnknownTypeNameIsReportedByName) {
  for (std::string_view body :
       {std::string_view{R"({"events":[{"type":"MoneyPrinted","v":1,"data":{}}]})"},
        std::string_view{R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"a"}},)"
                         R"({"type":"MoneyPrinted","v":1,"data":{"amount":1}}]})"},
        std::string_view{R"({"events":[{"type":"MoneyPrinted","v":7}]})"}}) {
    SCOPED_TRACE(body);
    auto e = decode_error(body);
    EXPECT_TRUE(e.is(errc::unknown_event_type)) << e;
    EXPECT_NE(e.message.find("MoneyPrinted"), std::string::npos) << e;
  }
  // Wire names are exact: no case folding, no C++ type names.
  for (std::string_view name : {"deposited", "bank::deposited", "Deposited ", ""}) {
    SCOPED_TRACE(name);
    auto e = decode_error(body_of(R"({"type":")" + std::string(name) + R"(","v":2,"data":{}})"));
    EXPECT_TRUE(e.is(errc::unknown_event_type)) << e;
  }
}

TEST(RegistryTest, UnknownSchemaVersionIsAnUnknownEventType) {
  for (std::string_view body : {
           R"({"type":"Deposited","v":3,"data":{"amount_cents":1,"note":""}})",
           R"({"type":"Deposited","v":0,"data":{"amount":1}})",
           R"({"type":"Deposited","v":-1,"data":{"amount":1}})",
           R"({"type":"Withdrawn","v":2,"data":{"amount_cents":1}})",
           R"({"type":"Withdrawn","v":0,"data":{"amount_cents":1}})",
           R"({"type":"AccountClosed","v":3,"data":{}})",
       }) {
    SCOPED_TRACE(body);
    auto e = decode_error(body_of(body));
    EXPECT_TRUE(e.is(errc::unknown_event_type)) << e;
    EXPECT_TRUE(e.message.find("Deposited") != std::string::npos ||
                e.message.find("Withdrawn") != std::string::npos ||
                e.message.find("AccountClosed") != std::string::npos)
        << e;
  }
}

// -- corrupted payloads ----------------------------------------------------------------------

TEST(RegistryTest, CorruptedPayloadsAreDecodeFailures) {
  const std::string_view bodies[] = {
      "",
      " ",
      "not json",
      "{",
      "}",
      "null",
      "42",
      R"("events")",
      "[]",
      "[1,2]",
      "{}",
      R"({"event":[]})",
      R"({"events":null})",
      R"({"events":5})",
      R"({"events":"[]"})",
      R"({"events":{}})",
      R"({"events":{"type":"Withdrawn","v":1,"data":{"amount_cents":1}}})",
      R"({"events":[5]})",
      R"({"events":[null]})",
      R"({"events":[[]]})",
      R"({"events":[{}]})",
      R"({"events":[{"v":1,"data":{"amount_cents":1}}]})",               // no type
      R"({"events":[{"type":"Withdrawn","data":{"amount_cents":1}}]})",  // no v
      R"({"events":[{"type":"Withdrawn","v":1}]})",                      // no data
      R"({"events":[{"type":"Withdrawn","v":1,"data":{}}]})",            // no field
      R"({"events":[{"type":"Withdrawn","v":1,"data":null}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":5}]})",
      R"({"events":[{"type":"AccountClosed","v":1,"data":5}]})",
      R"({"events":[{"type":5,"v":1,"data":{}}]})",
      R"({"events":[{"type":null,"v":1,"data":{}}]})",
      R"({"events":[{"type":"Withdrawn","v":"1","data":{"amount_cents":1}}]})",
      R"({"events":[{"type":"Withdrawn","v":1.5,"data":{"amount_cents":1}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":"x"}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":"1"}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":1.5}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":true}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":null}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":9223372036854775808}}]})",
      R"({"events":[{"type":"Withdrawn","v":1,"data":{"amount_cents":-9223372036854775809}}]})",
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":7}}]})",
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":null}}]})",
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":["ada"]}}]})",
      R"({"events":[{"type":"Deposited","v":1,"data":{"amount":"7"}}]})",         // upcast path
      R"({"events":[{"type":"Deposited","v":1,"data":{"amount_cents":7}}]})",     // v2 data as v1
      R"({"events":[{"type":"Deposited","v":2,"data":{"amount":7}}]})",           // v1 data as v2
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"ada"}},5]})",  // 2nd bad
      R"({"events":[]} trailing)",
      R"({"events":[]}{"events":[]})",
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"a\q"}}]})",  // bad escape
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"a)"
      "\n"
      R"("}}]})",  // raw LF
      R"({'events':[]})",
  };
  for (std::string_view body : bodies) {
    SCOPED_TRACE(testing::Message() << "body: [" << body << "]");
    auto e = decode_error(body);
    EXPECT_TRUE(e.is(errc::decode_failed)) << e;
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(RegistryTest, EveryTruncationOfAValidBodyIsADecodeFailure) {
  auto body = registry::encode(std::vector<account::event>{
      account_opened{"ada \xC3\xA9"}, deposited{-5, "a\"b"}, withdrawn{1}, account_closed{}});
  ASSERT_TRUE(body) << body.error();
  const std::string& full = body.value();
  ASSERT_TRUE(registry::decode(full));
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = registry::decode(std::string_view(full).substr(0, n));
    ASSERT_FALSE(r) << "a prefix of " << n << " bytes decoded: " << full.substr(0, n);
    ASSERT_TRUE(r.error().is(errc::decode_failed)) << r.error() << " at " << n << " bytes";
  }
}

TEST(RegistryTest, BinaryGarbageIsADecodeFailure) {
  std::string garbage;
  for (int i = 0; i < 256; ++i) garbage += static_cast<char>(i);
  for (std::string_view body : {std::string_view{garbage}, std::string_view{"\0\0\0", 3},
                                std::string_view{"\xEF\xBB\xBF"}, std::string_view{"\xFF\xFE{"}}) {
    auto e = decode_error(body);
    EXPECT_TRUE(e.is(errc::decode_failed)) << e;
  }
}

// -- knows -----------------------------------------------------------------------------------

TEST(RegistryTest, KnowsItsWireNamesOnly) {
  EXPECT_TRUE(registry::knows("Deposited"));
  EXPECT_TRUE(registry::knows("AccountOpened"));
  EXPECT_TRUE(registry::knows("Withdrawn"));
  EXPECT_TRUE(registry::knows("AccountClosed"));
  EXPECT_FALSE(registry::knows("Nope"));
  EXPECT_FALSE(registry::knows(""));
  EXPECT_FALSE(registry::knows("deposited"));
  EXPECT_FALSE(registry::knows("Deposited "));
  EXPECT_FALSE(registry::knows("Account"));  // the aggregate's name is not an event's
}

}  // namespace
