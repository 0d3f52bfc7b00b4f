// The internal target's wire parsers (no server): the JetStream ack-subject parser shared by the
// event store's reads and the projector, and the count of the events an Es-Events header names.
#include <gtest/gtest.h>

#include <string>

#include "wire/ack_subject.hpp"
#include "wire/headers.hpp"

namespace {

using jetsource::detail::event_count;
using jetsource::detail::parse_ack_subject;

TEST(AckSubjectTest, ParsesTheNineTokenFormOfServer29) {
  const std::string s = "$JS.ACK.ORDERS.proj-x.3.1042.17.1700000000123456789.5";
  auto m = parse_ack_subject(s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->n.delivered, 3u);
  EXPECT_EQ(m->n.stream_sequence, 1042u);
  EXPECT_EQ(m->n.consumer_sequence, 17u);
  EXPECT_EQ(m->n.timestamp, 1700000000123456789u);
  EXPECT_EQ(m->n.pending, 5u);
  EXPECT_EQ(m->prefix, "$JS.ACK.ORDERS.proj-x.");
  EXPECT_EQ(m->suffix, "");
}

TEST(AckSubjectTest, ParsesTheTwelveTokenFormWithDomainAndAccountHash) {
  const std::string s = "$JS.ACK.hub.ACCHASH.ORDERS.proj-x.1.9.8.1700000000000000000.0.rnd";
  auto m = parse_ack_subject(s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->n.delivered, 1u);
  EXPECT_EQ(m->n.stream_sequence, 9u);
  EXPECT_EQ(m->n.consumer_sequence, 8u);
  EXPECT_EQ(m->n.pending, 0u);
  EXPECT_EQ(m->prefix, "$JS.ACK.hub.ACCHASH.ORDERS.proj-x.");
  EXPECT_EQ(m->suffix, ".rnd");
}

TEST(AckSubjectTest, PrefixAndSuffixRebuildTheSubjectAroundTheNumbers) {
  // A cumulative ack names a message by these parts and its numbers.
  const std::string s = "$JS.ACK.hub.H.S.C.2.300.301.5.7.tok";
  auto m = parse_ack_subject(s);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(m->prefix) + "2.300.301.5.7" + std::string(m->suffix), s);
}

TEST(AckSubjectTest, RefusesOtherRootsAndTokenCounts) {
  EXPECT_FALSE(parse_ack_subject(""));
  EXPECT_FALSE(parse_ack_subject("_INBOX.abc.1"));
  EXPECT_FALSE(parse_ack_subject("$JS.NAK.S.C.1.2.3.4.5"));
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.2.3.4"));        // 8 tokens
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.2.3.4.5.6"));    // 10
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.d.h.S.C.1.2.3.4.5"));  // 11
  EXPECT_FALSE(parse_ack_subject("$js.ack.S.C.1.2.3.4.5"));      // case matters
}

TEST(AckSubjectTest, RefusesNumberTokensThatAreNotDecimalNumbers) {
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.x.3.4.5"));
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.2.3.4."));                      // empty pending
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.-2.3.4.5"));                    // a sign
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.2 .3.4.5"));                    // trailing space
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.S.C.1.99999999999999999999.3.4.5"));  // > 2^64
  EXPECT_FALSE(parse_ack_subject("$JS.ACK.d.h.S.C.1.2.3.4.five.t"));
}

TEST(AckSubjectTest, ReadsALongerSubjectAsItsFirstTwelveTokens) {
  // What both parsers it replaced did: the rest goes to the suffix.
  auto m = parse_ack_subject("$JS.ACK.d.h.S.C.1.2.3.4.5.t.extra");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->n.stream_sequence, 2u);
  EXPECT_EQ(m->suffix, ".t.extra");
}

// The fetcher's reader reads only the numbers of a subject with the last prefix: every answer
// must be the full parser's.
void expect_same_as_full_parse(jetsource::detail::ack_subject_reader& read, std::string_view s) {
  SCOPED_TRACE(std::string(s));
  auto fast = read(s);
  auto full = parse_ack_subject(s);
  ASSERT_EQ(fast.has_value(), full.has_value());
  if (!fast) return;
  EXPECT_EQ(fast->prefix, full->prefix);
  EXPECT_EQ(fast->suffix, full->suffix);
  EXPECT_EQ(fast->n.delivered, full->n.delivered);
  EXPECT_EQ(fast->n.stream_sequence, full->n.stream_sequence);
  EXPECT_EQ(fast->n.consumer_sequence, full->n.consumer_sequence);
  EXPECT_EQ(fast->n.timestamp, full->n.timestamp);
  EXPECT_EQ(fast->n.pending, full->n.pending);
}

TEST(AckSubjectReaderTest, AnswersWhatTheFullParseAnswersAfterANinetokenSubject) {
  jetsource::detail::ack_subject_reader read;
  for (std::string_view s : {
           "$JS.ACK.S.C.1.2.3.4.5",  // teaches the prefix
           "$JS.ACK.S.C.2.300.301.1700000000123456789.0",
           "$JS.ACK.S.C.1.2.3.4.5.6",                   // 10 tokens: refused
           "$JS.ACK.S.C.1.2.3.4",                       // 8
           "$JS.ACK.S.C.1.2.3.4.",                      // empty pending
           "$JS.ACK.S.C.1.x.3.4.5",                     // not a number
           "$JS.ACK.S.C.1.99999999999999999999.3.4.5",  // > 2^64
           "$JS.ACK.S.C.1.18446744073709551615.3.4.5",  // 2^64 - 1
           "$JS.ACK.S.C.a.b.1.2.3.4.5.t",               // 12 tokens: domain S, hash C
           "$JS.ACK.S.CD.1.2.3.4.5",                    // another consumer
       })
    expect_same_as_full_parse(read, s);
}

TEST(AckSubjectReaderTest, AnswersWhatTheFullParseAnswersAfterATwelveTokenSubject) {
  jetsource::detail::ack_subject_reader read;
  for (std::string_view s : {
           "$JS.ACK.d.h.S.C.1.2.3.4.5.tok",
           "$JS.ACK.d.h.S.C.7.8.9.10.11.other",
           "$JS.ACK.d.h.S.C.1.2.3.4.5",          // 11 tokens: refused
           "$JS.ACK.d.h.S.C.1.2.3.4.5.",         // an empty 12th token
           "$JS.ACK.d.h.S.C.1.2.3.4.5.t.extra",  // longer: the rest is the suffix
           "$JS.ACK.d.h.S.C.1.2.3.4.5..x",
       })
    expect_same_as_full_parse(read, s);
}

TEST(EventCountTest, CountsCommaSeparatedWireNames) {
  EXPECT_EQ(event_count(""), 0u);
  EXPECT_EQ(event_count("order.placed.v1"), 1u);
  EXPECT_EQ(event_count("a,b"), 2u);
  EXPECT_EQ(event_count("a,b,c,d"), 4u);
  static_assert(event_count("x,y,z") == 3);
}

}  // namespace
