// Regression tests of what the fuzz targets (tests/fuzz, scripts/fuzz.sh) found in the commit
// decoder, each with the input that broke it, through the paths a stored commit takes: the
// repository's load (event_registry::decode), the projector's apply (projection_test: the same
// applier), a snapshot (from_json). And the number conversion that replaced rapidjson's.
#include <jetsource/event.hpp>
#include <jetsource/testing/projection_test.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "balances_projection.hpp"
#include "test_domain.hpp"
#include "wire/header_block.hpp"

namespace {

using registry = jetsource::event_registry<bank::account::event>;
using jetsource::errc;

// {"events":[[[[...]]]]}: `depth` nested arrays where the events' objects belong.
std::string nested_body(std::size_t depth) {
  return R"({"events":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
}

// Found by commit_decoder: rapidjson's recursive parser took stack per nesting level, so a
// body of 1 MB of '[' (accepted by nats-server's default max payload) overflowed the stack of
// every process that loaded or projected the aggregate. Now a body nested deeper than
// json_reader::max_depth (512) is malformed, an error like any other.
TEST(FuzzRegressions, ADeeplyNestedBodyIsAnErrorNotAStackOverflow) {
  const std::string body = nested_body(500'000);  // ~1 MB
  auto events = registry::decode(body);
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error().code, errc::decode_failed) << events.error();

  jetsource::testing::projection_test t(jetsource::test::balances_projection());
  ASSERT_FALSE(t.setup_error()) << *t.setup_error();
  ASSERT_TRUE(t.apply_commit("Account", "deep", "Deposited", body));
  auto dead = t.dead_letters();
  ASSERT_TRUE(dead) << dead.error();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].kind, "poison");
  EXPECT_EQ((*dead)[0].aggregate_id, "deep");

  using jetsource::detail::json_reader;
  auto depth = [](std::size_t levels) {
    return std::string(levels, '[') + std::string(levels, ']');
  };
  EXPECT_NO_THROW(json_reader{depth(json_reader::max_depth)});
  EXPECT_THROW(json_reader{depth(json_reader::max_depth + 1)}, cereal::Exception);

  auto snapshot = jetsource::detail::from_json<bank::account>(
      "state", R"({"state":)" + std::string(500'000, '[') + "}");
  EXPECT_FALSE(snapshot);
}

// Found by commit_decoder (input "\n 0e111."): rapidjson 1.1.0's full-precision conversion of a
// number whose digits are all zeros and whose exponent is large (valid JSON) called
// __builtin_clzll(0) and shifted by a negative count: undefined behaviour (a UBSan build stops).
// Now 0.0, and a double where an integer belongs is a decode error as before.
TEST(FuzzRegressions, AZeroWithALargeExponentIsAPlainDouble) {
  auto events = registry::decode(
      R"({"events":[{"type":"Deposited","v":2,"data":{"amount_cents":0e111,"note":""}}]})");
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error().code, errc::decode_failed);
  EXPECT_NE(events.error().message.find("expected an integer"), std::string::npos)
      << events.error();

  for (const char* zero : {"0e111", "-0.000e300", "0E-400", "0.0e+308"}) {
    auto x = jetsource::detail::from_json<double>("x", std::string(R"({"x":)") + zero + "}");
    ASSERT_TRUE(x) << zero << ": " << x.error();
    EXPECT_EQ(*x, 0.0) << zero;
  }
}

// The numbers jetsource now converts itself (std::from_chars) read as rapidjson's full-precision
// mode read them: exact doubles, 64-bit integers kept exact, NaN and Infinity as cereal writes
// them, too-large numbers refused, too-small ones 0.
TEST(FuzzRegressions, NumbersKeepTheirMeaning) {
  using jetsource::detail::from_json;
  auto d = [](const std::string& text) { return from_json<double>("x", R"({"x":)" + text + "}"); };
  EXPECT_EQ(*d("0.1"), 0.1);
  EXPECT_EQ(*d("-2.5e-3"), -2.5e-3);
  EXPECT_EQ(*d("1.7976931348623157e308"), std::numeric_limits<double>::max());
  EXPECT_EQ(*d("4.9406564584124654e-324"), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(*d("12"), 12.0);
  EXPECT_EQ(*d("18446744073709551616"), 18446744073709551616.0);  // 2^64: a double
  EXPECT_EQ(*d("1e-400"), 0.0);
  EXPECT_EQ(*d("1.5e-400"), 0.0);  // the '.' read as the C locale's, whatever the program's
  EXPECT_EQ(*d("0." + std::string(400, '0') + "1"), 0.0);
  EXPECT_TRUE(std::signbit(*d("-1e-400")));
  EXPECT_FALSE(d("1e400"));
  EXPECT_FALSE(d("9.9e308"));
  EXPECT_TRUE(std::isnan(*d("NaN")));
  EXPECT_EQ(*d("-Infinity"), -std::numeric_limits<double>::infinity());

  constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();
  constexpr auto u64_max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(*from_json<std::int64_t>("x", R"({"x":-9223372036854775808})"), i64_min);
  EXPECT_EQ(*from_json<std::uint64_t>("x", R"({"x":18446744073709551615})"), u64_max);
  EXPECT_EQ(*from_json<int>("x", R"({"x":-0})"), 0);
  EXPECT_FALSE(from_json<std::uint64_t>("x", R"({"x":-1})"));
  EXPECT_FALSE(from_json<int>("x", R"({"x":2147483648})"));
  EXPECT_FALSE(from_json<int>("x", R"({"x":1.0})"));
  EXPECT_FALSE(from_json<int>("x", R"({"x":1e2})"));
  EXPECT_FALSE(from_json<std::int64_t>("x", R"({"x":9223372036854775808})"));
  EXPECT_FALSE(from_json<int>("x", R"({"x":01})"));  // not JSON
  EXPECT_FALSE(from_json<int>("x", R"({"x":1,})"));
}

// The header block reader the fuzz target header_parser drives (parse_commit_headers): the
// contract its checks hold it to.
TEST(FuzzRegressions, HeaderBlockReaderKeepsItsContract) {
  using jetsource::detail::parse_commit_headers;
  auto h = parse_commit_headers(
      "NATS/1.0\r\nEs-Version:  7 \t\r\nEs-Version: 8\r\nEs-Events:A,B\r\n"
      "Es-Aggregate-Type: Account\r\nEs-Aggregate-Id: a\r\n\r\n");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->version, "7");  // the first value, trimmed
  EXPECT_EQ(h->events, "A,B");
  EXPECT_EQ(h->type, "Account");
  EXPECT_EQ(h->id, "a");
  EXPECT_EQ(h->msg_id, "");
  // What a cold load reads from a direct get's reply (ADR 0022).
  auto reply = parse_commit_headers(
      "NATS/1.0\r\nEs-Version: 3\r\nEs-State-Schema: 2\r\nNats-Stream: S\r\n"
      "Nats-Sequence: 41\r\nEs-Causation-Id: c\r\n\r\n");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->sequence, "41");
  EXPECT_EQ(reply->state_schema, "2");
  EXPECT_EQ(reply->causation, "c");
  EXPECT_EQ(reply->id, "");
  EXPECT_FALSE(parse_commit_headers(""));
  EXPECT_FALSE(parse_commit_headers("NATS/1.0\r\n"));
  EXPECT_FALSE(parse_commit_headers("NATS/1.0\r\nEs-Version 1\r\n\r\n"));     // no ':'
  EXPECT_FALSE(parse_commit_headers("NATS/1.0\r\n folded: 1\r\n\r\n"));       // folded line
  EXPECT_FALSE(parse_commit_headers("NATS/1.0\r\n\r\n\r\n"));                 // an empty line
  EXPECT_TRUE(parse_commit_headers("NATS/1.0 408 Request Timeout\r\n\r\n"));  // no headers
}

}  // namespace
