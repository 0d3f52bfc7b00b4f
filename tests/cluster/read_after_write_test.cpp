// Read-after-write on an R3 stream: a load that starts after an append was acknowledged sees
// that commit, whichever node the reader's connection goes to. A direct get is answered by any
// replica in the stream's queue group (nats-server prefers the one on the reader's own node), and
// a follower applies a commit after the leader has acknowledged it (it learns of the commit with
// the leader's next message), so a reader on a follower node used to see the aggregate one
// commit behind, or not at all.
#include "cluster_fixture.hpp"
#include "nats_fixture.hpp"
#include "store/commit_message.hpp"
#include "store/reads.hpp"
#include "store/store_state.hpp"
#include "subject_watcher.hpp"

#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <atomic>
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

// A client that answers every message get of `stream` at once as nats-server 2.9.10 lets a member
// of the stream's group answer when it believes the group has no leader (a node restarted and
// still catching up): "JetStream system temporarily unavailable", 10008. On the reader's own
// node it answers before the leader, whose answer comes over a route.
class no_leader_member : public test_responder {
 public:
  no_leader_member(const std::string& url, const std::string& stream)
      : test_responder(url, "$JS.API.STREAM.MSG.GET." + stream, [](natsConnection* nc, natsMsg* m) {
          static const char* body =
              R"({"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":503,)"
              R"("err_code":10008,"description":"JetStream system temporarily unavailable"}})";
          const char* reply = natsMsg_GetReply(m);
          return reply != nullptr && natsConnection_PublishString(nc, reply, body) == NATS_OK;
        }) {}
};

// Reads through a node where such a member answers get the leader's answer: heads, reads, and the
// check of a duplicate append, which reads the stored commit from the leader. Whether the member
// or the leader answers first varies from request to request here; the member that answered
// first for 25 s in make test (a real server, answering from inside itself) was not reproduced
// deterministically, so this test also passes with the reads taking the first answer and asking
// again (before leader_gets.cpp): it shows that such a member costs no read, not the race itself.
TEST_F(r3_reads, AMemberThatAnswersNoLeaderFirstDoesNotHideTheLeadersAnswer) {
  const int lead = cluster_.index_of(cluster_.stream_leader("RAW"));
  ASSERT_GE(lead, 0);
  const int follower = (lead + 1) % cluster_.size();
  event_store& writer = stores_[static_cast<std::size_t>(lead)];
  event_store& reader = stores_[static_cast<std::size_t>(follower)];
  commit first{.aggregate_type = "T",
               .aggregate_id = "x",
               .expected_sequence = 0,
               .version = 1,
               .commit_id = "x-1",
               .event_types = "Made",
               .body = "{}"};
  auto a = writer.append(first);
  ASSERT_TRUE(a) << a.error();

  no_leader_member member(cluster_.url(follower), "RAW");
  constexpr int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    auto h = reader.head("T", "x");
    ASSERT_TRUE(h) << h.error();
    ASSERT_TRUE(*h);
    EXPECT_EQ((*h)->sequence, a->sequence);
    auto log = reader.read("T", "x");
    ASSERT_TRUE(log) << log.error();
    EXPECT_EQ(log->commits.size(), 1u);
  }
  auto again = reader.append(first);  // the same commit id: found at the leader, not re-stored
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->status, append_status::already_appended);
  EXPECT_EQ(again->sequence, a->sequence);
  EXPECT_TRUE(member.answered_at_least(rounds * 2)) << member.answered();
}

// A read whose ordered consumer goes silent (the server may place it on a follower that lags)
// reads the rest from the stream leader, one message get per commit (next_by_subj): the commits
// of one aggregate, in order, skipping the others', through a node where a member answers "no
// leader" first.
TEST_F(r3_reads, TheLeaderHandsOutAnAggregatesCommitsOneByOne) {
  const int lead = cluster_.index_of(cluster_.stream_leader("RAW"));
  ASSERT_GE(lead, 0);
  const int follower = (lead + 1) % cluster_.size();
  event_store& writer = stores_[static_cast<std::size_t>(lead)];
  std::vector<std::uint64_t> ys;
  std::uint64_t expected_y = 0, expected_z = 0;
  for (std::uint64_t v = 1; v <= 3; ++v) {
    for (const char* id : {"y", "z"}) {
      auto& expected = id[0] == 'y' ? expected_y : expected_z;
      auto a = writer.append({.aggregate_type = "T",
                              .aggregate_id = id,
                              .expected_sequence = expected,
                              .version = v,
                              .event_types = "Made",
                              .body = "{}"});
      ASSERT_TRUE(a) << a.error();
      expected = a->sequence;
      if (id[0] == 'y') ys.push_back(a->sequence);
    }
  }
  detail::store_state st;
  st.options = {.stream = "RAW", .subject_prefix = "raw", .replicas = 3};
  st.conn = detail::state_of(conns_[static_cast<std::size_t>(follower)]);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, st.conn->nc.get(), nullptr), NATS_OK);
  st.js.reset(js);
  auto subject = detail::store::make_subject(st.options, "T", "y");
  ASSERT_TRUE(subject) << subject.error();

  no_leader_member member(cluster_.url(follower), "RAW");
  std::vector<std::uint64_t> got;
  for (std::uint64_t next = 1;;) {
    auto m = detail::store::from_leader(
        st, {.stream = "RAW", .sequence = next, .next_by_subject = *subject, .what = "test"});
    ASSERT_TRUE(m) << m.error();
    if (!*m) break;
    EXPECT_EQ(std::string(natsMsg_GetSubject(m->get())), *subject);
    auto v = detail::store::version_of(m->get());
    ASSERT_TRUE(v) << v.error();
    EXPECT_EQ(*v, got.size() + 1);
    got.push_back(detail::store::reply_sequence(m->get()));
    next = got.back() + 1;
  }
  EXPECT_EQ(got, ys);
  EXPECT_TRUE(member.answered_at_least(4)) << member.answered();
}

}  // namespace
}  // namespace jetsource::test
