// The commit-body codec (event_registry encode/decode: the public wire format) and the snapshot
// JSON helpers (detail::to_json / from_json).
#include <jetsource/event.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "test_domain.hpp"

namespace {

using namespace bank;
using registry = jetsource::event_registry<account::event>;
using event_list = std::vector<account::event>;

constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

// A string with everything that needs escaping or multi-byte UTF-8.
const std::string tricky =
    "quote \" backslash \\ slash / tab \t newline \n cr \r bell \x07 "
    "del \x7f e-acute \xC3\xA9 kanji \xE6\x97\xA5\xE6\x9C\xAC "
    "emoji \xF0\x9F\x99\x82 {\"events\":[]} \\u0041";

std::string encode(const event_list& events) {
  auto body = registry::encode(events);
  EXPECT_TRUE(body) << body.error();
  return body ? body.value() : std::string{};
}

event_list decode(std::string_view body) {
  auto events = registry::decode(body);
  EXPECT_TRUE(events) << events.error() << "\nbody: " << body;
  return events ? events.value() : event_list{};
}

TEST(CodecTest, EncodesTheDocumentedWireFormat) {
  EXPECT_EQ(encode({account_opened{"ada"}}),
            R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"ada"}}]})");
  EXPECT_EQ(encode({account_opened{"ada"}, deposited{250, "salary"}, withdrawn{-3}}),
            R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"ada"}},)"
            R"({"type":"Deposited","v":2,"data":{"amount_cents":250,"note":"salary"}},)"
            R"({"type":"Withdrawn","v":1,"data":{"amount_cents":-3}}]})");
}

TEST(CodecTest, EventWithoutFieldsHasAnEmptyDataObject) {
  const std::string body = encode({account_closed{}});
  EXPECT_EQ(body, R"({"events":[{"type":"AccountClosed","v":1,"data":{}}]})");
  auto events = decode(body);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<account_closed>(events[0]));
}

TEST(CodecTest, EmptyCommitIsAnEmptyArray) {
  const std::string body = encode({});
  EXPECT_EQ(body, R"({"events":[]})");
  EXPECT_TRUE(decode(body).empty());
}

TEST(CodecTest, RoundTripsEveryEventTypeInOrder) {
  const event_list original{account_opened{tricky}, deposited{int64_max, tricky},
                            withdrawn{int64_min},   account_closed{},
                            deposited{0, ""},       account_opened{"bob"}};
  const std::string body = encode(original);
  auto events = decode(body);
  ASSERT_EQ(events.size(), original.size());

  ASSERT_TRUE(std::holds_alternative<account_opened>(events[0]));
  EXPECT_EQ(std::get<account_opened>(events[0]).owner, tricky);

  ASSERT_TRUE(std::holds_alternative<deposited>(events[1]));
  EXPECT_EQ(std::get<deposited>(events[1]).amount_cents, int64_max);
  EXPECT_EQ(std::get<deposited>(events[1]).note, tricky);

  ASSERT_TRUE(std::holds_alternative<withdrawn>(events[2]));
  EXPECT_EQ(std::get<withdrawn>(events[2]).amount_cents, int64_min);

  EXPECT_TRUE(std::holds_alternative<account_closed>(events[3]));

  ASSERT_TRUE(std::holds_alternative<deposited>(events[4]));
  EXPECT_EQ(std::get<deposited>(events[4]).amount_cents, 0);
  EXPECT_EQ(std::get<deposited>(events[4]).note, "");

  ASSERT_TRUE(std::holds_alternative<account_opened>(events[5]));
  EXPECT_EQ(std::get<account_opened>(events[5]).owner, "bob");

  // Decoding and encoding again gives the very same bytes.
  EXPECT_EQ(encode(events), body);
}

TEST(CodecTest, WritesIntegersExactlyAndStringsAsValidJson) {
  const std::string body = encode({withdrawn{int64_min}, withdrawn{int64_max}});
  // Integers are JSON integers (no exponent, no rounding through double).
  EXPECT_NE(body.find(R"("amount_cents":-9223372036854775808)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("amount_cents":9223372036854775807)"), std::string::npos) << body;

  const std::string text = encode({account_opened{"a\"b\\c\nd\x01"}});
  EXPECT_EQ(text,
            R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"a\"b\\c\nd\u0001"}}]})");
  // UTF-8 is written as is, not escaped.
  EXPECT_EQ(encode({account_opened{"ordre-\xC3\xA9"}}),
            "{\"events\":[{\"type\":\"AccountOpened\",\"v\":1,\"data\":{\"owner\":\"ordre-"
            "\xC3\xA9\"}}]}");
}

TEST(CodecTest, NamesAreTheWireNamesInOrder) {
  const event_list two{account_opened{"ada"}, deposited{1, ""}};
  EXPECT_EQ(registry::names(two), "AccountOpened,Deposited");
  EXPECT_EQ(registry::names(event_list{}), "");
  EXPECT_EQ(registry::names(event_list{withdrawn{1}}), "Withdrawn");
  EXPECT_EQ(registry::names(event_list{deposited{1, ""}, deposited{2, ""}, account_closed{},
                                       account_opened{"x"}}),
            "Deposited,Deposited,AccountClosed,AccountOpened");
  EXPECT_EQ(jetsource::type_name_of(account::event{withdrawn{1}}), "Withdrawn");
}

TEST(CodecTest, DecodesKeysInAnyOrderAndIgnoresUnknownKeys) {
  // As another language's JSON library may write it: other key order, extra keys, whitespace.
  const std::string body = R"(
    {
      "producer": {"lang": "go", "version": [1, 2]},
      "events": [
        {"data": {"note": "n", "extra": [1, {"x": null}], "amount_cents": 5}, "v": 2,
         "meta": "ignored", "type": "Deposited"},
        {"v": 1, "type": "AccountOpened", "data": {"nickname": "a", "owner": "ada"}},
        {"type": "AccountClosed", "data": {"why": "moved"}, "v": 1},
        {"data": {"amount": 3}, "type": "Deposited", "v": 1}
      ],
      "trailer": null
    })";
  auto events = decode(body);
  ASSERT_EQ(events.size(), 4u);
  ASSERT_TRUE(std::holds_alternative<deposited>(events[0]));
  EXPECT_EQ(std::get<deposited>(events[0]).amount_cents, 5);
  EXPECT_EQ(std::get<deposited>(events[0]).note, "n");
  ASSERT_TRUE(std::holds_alternative<account_opened>(events[1]));
  EXPECT_EQ(std::get<account_opened>(events[1]).owner, "ada");
  EXPECT_TRUE(std::holds_alternative<account_closed>(events[2]));
  ASSERT_TRUE(std::holds_alternative<deposited>(events[3]));
  EXPECT_EQ(std::get<deposited>(events[3]).amount_cents, 300);
  EXPECT_EQ(std::get<deposited>(events[3]).note, "(v1)");
}

TEST(CodecTest, DecodesEscapedUnicodeAsOtherWritersProduceIt) {
  // Python's json.dumps (ensure_ascii) and others escape non-ASCII, with surrogate pairs.
  auto events = decode(
      R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"ordre-\u00e9 \u65e5 \ud83d\ude42 \"q\" \\ \/"}}]})");
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<account_opened>(events[0]));
  EXPECT_EQ(std::get<account_opened>(events[0]).owner,
            "ordre-\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x99\x82 \"q\" \\ /");
}

TEST(CodecTest, EmbeddedNulSurvivesARoundTrip) {
  const std::string with_nul("a\0b", 3);
  const std::string body = encode({account_opened{with_nul}});
  EXPECT_EQ(body, R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"a\u0000b"}}]})");
  auto events = decode(body);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<account_opened>(events[0]).owner, with_nul);
}

TEST(SnapshotCodecTest, RoundTripsAggregateState) {
  account a;
  a.apply(account_opened{tricky});
  a.apply(deposited{int64_max, "first"});
  a.apply(withdrawn{int64_max});
  a.apply(deposited{7, tricky});
  a.apply(account_closed{});

  auto json = jetsource::detail::to_json("state", a);
  ASSERT_TRUE(json) << json.error();
  EXPECT_EQ(json.value().rfind(R"({"state":{)", 0), 0u) << json.value();
  EXPECT_EQ(json.value().find('\n'), std::string::npos)
      << "snapshots are compact: " << json.value();

  auto back = jetsource::detail::from_json<account>("state", json.value());
  ASSERT_TRUE(back) << back.error();
  const account& b = back.value();
  EXPECT_FALSE(b.open());
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(b.owner(), tricky);
  EXPECT_EQ(b.balance_cents(), 7);
  EXPECT_EQ(b.notes(), (std::vector<std::string>{"first", tricky}));

  // And the snapshot of the restored state is byte for byte the same.
  auto again = jetsource::detail::to_json("state", b);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again.value(), json.value());
}

TEST(SnapshotCodecTest, RoundTripsANewAggregate) {
  auto json = jetsource::detail::to_json("state", account{});
  ASSERT_TRUE(json) << json.error();
  auto back = jetsource::detail::from_json<account>("state", json.value());
  ASSERT_TRUE(back) << back.error();
  EXPECT_FALSE(back.value().open());
  EXPECT_FALSE(back.value().closed());
  EXPECT_EQ(back.value().owner(), "");
  EXPECT_EQ(back.value().balance_cents(), 0);
  EXPECT_TRUE(back.value().notes().empty());
}

TEST(SnapshotCodecTest, UndecodableSnapshotIsAnErrorNotACrash) {
  auto good = jetsource::detail::to_json("state", account{});
  ASSERT_TRUE(good) << good.error();
  for (std::string_view bad :
       {std::string_view{}, std::string_view{"not json"}, std::string_view{"{}"},
        std::string_view{R"({"other":{}})"}, std::string_view{R"({"state":5})"},
        std::string_view{R"({"state":{"open_":"yes"}})"},
        std::string_view{good.value()}.substr(0, 20)}) {
    SCOPED_TRACE(bad);
    auto r = jetsource::detail::from_json<account>("state", bad);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(jetsource::errc::decode_failed)) << r.error();
    EXPECT_NE(r.error().message.find("state"), std::string::npos) << r.error();
  }
}

}  // namespace
