// Read-after-write on an R3 stream: a load that starts after an append was acknowledged sees
// that commit, whichever node the reader's connection goes to. A direct get is answered by any
// replica in the stream's queue group (nats-server prefers the one on the reader's own node), and
// a follower applies a commit after the leader has acknowledged it (it learns of the commit with
// the leader's next message), so a reader on a follower node used to see the aggregate one
// commit behind, or not at all.
#include "cluster_fixture.hpp"
#include "nats_fixture.hpp"

#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace jetsource::test {
namespace {

class r3_reads : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = cluster_.start();
    ASSERT_TRUE(r) << r.error();
    for (int i = 0; i < cluster_.size(); ++i) {
      auto o = cluster_.client_options();
      o.urls = {cluster_.url(i)};
      auto c = connection::connect(o);
      ASSERT_TRUE(c) << c.error();
      conns_.push_back(std::move(c).value());
    }
    for (auto& c : conns_) {
      auto s = event_store::open(c, {.stream = "RAW", .subject_prefix = "raw", .replicas = 3});
      ASSERT_TRUE(s) << s.error();
      stores_.push_back(std::move(s).value());
    }
  }

  temp_dir dir_;
  nats_cluster cluster_{dir_.path()};
  std::vector<connection> conns_;
  std::vector<event_store> stores_;
};

TEST_F(r3_reads, EveryReadRightAfterAnAcknowledgedAppendSeesItOnEveryNode) {
  const int lead = cluster_.index_of(cluster_.stream_leader("RAW"));
  ASSERT_GE(lead, 0);
  event_store& writer = stores_[static_cast<std::size_t>(lead)];
  // Stale answers by kind of read: head(), read() (the head, then the commits before it: the
  // second commit's read finds the first just appended), load_head_and_snapshot().
  int stale[3] = {0, 0, 0}, missing = 0;
  std::string last_error;
  auto check = [&](event_store& reader, const std::string& id, const append_result& a, int kind) {
    if (kind == 0) {
      auto h = reader.head("T", id);
      ASSERT_TRUE(h) << h.error();
      if (!*h) ++missing;
      if (!*h || (*h)->sequence < a.sequence) ++stale[0];
    } else if (kind == 1) {
      auto log = reader.read("T", id);
      if (!log) last_error = log.error().message;
      if (!log || log->head.sequence < a.sequence || log->commits.size() != a.version) ++stale[1];
    } else {
      auto pair = reader.load_head_and_snapshot("T", id);
      ASSERT_TRUE(pair) << pair.error();
      if (!pair->head || pair->head->sequence < a.sequence) ++stale[2];
    }
  };
  constexpr int rounds = 200;
  const int nodes = cluster_.size();
  for (int r = 0; r < rounds; ++r) {
    const std::string id = fmt::format("a-{}", r);
    std::uint64_t expected = 0;
    for (std::uint64_t version : {1u, 2u}) {  // a new aggregate (stale: "not found"), then more
      auto a = writer.append({.aggregate_type = "T",
                              .aggregate_id = id,
                              .expected_sequence = expected,
                              .version = version,
                              .event_types = "Made",
                              .body = "{}"});
      ASSERT_TRUE(a) << a.error();
      expected = a->sequence;
      // Only the first read after the ack races the followers: each node and each kind of read
      // goes first in turn.
      for (int k = 0; k < nodes * 3; ++k) {
        const int turn = r * 2 + static_cast<int>(version) + k;
        check(stores_[static_cast<std::size_t>(turn % nodes)], id, *a, (turn / nodes) % 3);
      }
    }
  }
  EXPECT_EQ(stale[0], 0) << missing << " of them found nothing";
  EXPECT_EQ(stale[1], 0) << last_error;
  EXPECT_EQ(stale[2], 0);
  std::fprintf(
      stderr, "%d rounds x 2 appends x %d nodes: stale heads %d (%d missing), reads %d, pairs %d\n",
      rounds, nodes, stale[0], missing, stale[1], stale[2]);
}

}  // namespace
}  // namespace jetsource::test
