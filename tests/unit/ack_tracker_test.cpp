// The ack window and applied mark (projections/src/ack_tracker.hpp): pure code, no server.
#include "ack_tracker.hpp"
#include "wire/ack_subject.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using jetsource::detail::ack_tracker;
using jetsource::detail::parse_ack_subject;

// A 2.9 ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.
std::string subject(std::uint64_t sseq, std::uint64_t cseq, const char* consumer = "c1") {
  return "$JS.ACK.ORDERS." + std::string(consumer) + ".1." + std::to_string(sseq) + "." +
         std::to_string(cseq) + ".1700000000." + std::to_string(100 - cseq);
}

void deliver(ack_tracker& t, std::uint64_t sseq, std::uint64_t cseq, const char* consumer = "c1") {
  auto s = subject(sseq, cseq, consumer);  // the tracker keeps copies, not views
  auto meta = parse_ack_subject(s);
  ASSERT_TRUE(meta);
  t.delivered(sseq, *meta);
}

TEST(AckTrackerTest, TheMarkIsTheContiguousCommittedPrefix) {
  ack_tracker t(4);
  deliver(t, 5, 1);
  deliver(t, 6, 2);
  deliver(t, 7, 3);
  EXPECT_EQ(t.advance(), 4u);
  t.committed(6);
  EXPECT_EQ(t.advance(), 4u) << "5 is not committed yet";
  EXPECT_FALSE(t.take_ack());
  t.committed(5);
  EXPECT_EQ(t.advance(), 6u);
  EXPECT_EQ(t.in_flight(), 1u);
  // One cumulative ack for the highest committed message at or below the mark, once.
  EXPECT_EQ(t.take_ack(), subject(6, 2));
  EXPECT_FALSE(t.take_ack());
  t.committed(7);
  EXPECT_EQ(t.advance(), 7u);
  EXPECT_EQ(t.take_ack(), subject(7, 3));
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(AckTrackerTest, WithNothingInFlightTheMarkIsTheLastDelivery) {
  ack_tracker t(0);
  EXPECT_EQ(t.advance(), 0u);
  // A filtered consumer skips sequences: 3 and 9 are the only deliveries.
  deliver(t, 3, 1);
  deliver(t, 9, 2);
  t.committed(9);
  EXPECT_EQ(t.advance(), 2u) << "3 is still in flight";
  t.committed(3);
  EXPECT_EQ(t.advance(), 9u);
  EXPECT_EQ(t.take_ack(), subject(9, 2));
}

TEST(AckTrackerTest, ARecreatedConsumersStaleDeliveriesAreNeverNamedInAnAck) {
  ack_tracker t(10);
  deliver(t, 11, 1, "old");
  deliver(t, 12, 2, "old");
  t.consumer_recreated();
  t.committed(11);
  EXPECT_EQ(t.advance(), 11u);
  EXPECT_FALSE(t.take_ack()) << "11 was delivered by the old consumer";
  // The new consumer sends 12 again: its numbers replace the stale ones, the committed flag stays
  // as it was (not committed yet).
  deliver(t, 12, 1, "new");
  EXPECT_EQ(t.advance(), 11u);
  t.committed(12);
  EXPECT_EQ(t.advance(), 12u);
  EXPECT_EQ(t.take_ack(), subject(12, 1, "new"));
}

TEST(AckTrackerTest, CommittedBeforeTheRedeliveryStaysCommitted) {
  ack_tracker t(0);
  deliver(t, 1, 1, "old");
  t.committed(1);  // a worker committed it, the fetcher has not advanced yet
  t.consumer_recreated();
  deliver(t, 1, 1, "new");
  EXPECT_EQ(t.advance(), 1u);
  EXPECT_EQ(t.take_ack(), subject(1, 1, "new"));
}

TEST(AckTrackerTest, ACommitOfAnUnknownSequenceIsIgnored) {
  ack_tracker t(5);
  t.committed(3);
  t.committed(99);
  EXPECT_EQ(t.advance(), 5u);
  EXPECT_FALSE(t.take_ack());
}

}  // namespace

namespace {

// A reactor keeps one tracker per partition over a shared cursor (ADR 0014).
TEST(AckTrackerTest, APartitionsMarkFollowsTheSharedCursorAndResetsToALowerMark) {
  ack_tracker t(10);
  deliver(t, 12, 1);
  t.passed(20);  // the cursor went on with other partitions' events
  EXPECT_EQ(t.advance(), 11u) << "held below its own in-flight event";
  t.committed(12);
  EXPECT_EQ(t.advance(), 20u) << "nothing of it in flight: up to what the cursor delivered";
  t.reset(15);  // acquired again at a lower checkpoint (the cursor rewinds)
  EXPECT_EQ(t.mark(), 15u);
  EXPECT_EQ(t.in_flight(), 0u);
  deliver(t, 17, 1);
  EXPECT_EQ(t.advance(), 16u);
}

}  // namespace
