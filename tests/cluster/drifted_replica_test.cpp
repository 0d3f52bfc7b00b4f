// Reads on an R3 stream through a replica whose log drifted (ADR 0021 amendments): nats-server
// 2.9.10 let one replica hold every commit after some point one sequence off (make test,
// 2026-12-04: 1,079 commits read at another sequence than the leader acknowledged, their
// versions in order). Such a replica is played here by a client answering direct gets from the
// real commits at their sequence plus or minus one, on an API prefix of its own that the read's
// JetStream context uses (nats-server 2.9.10 does not let a replicated stream's direct gets be
// switched off). The read of the commits before a head (store/range_reads.cpp) must notice (each
// commit's Nats-Expected-Last-Subject-Sequence names the sequence of the one before it) and hand
// over the leader's commits, none of the replica's.
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
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;

// Answers direct gets (next_by_subj) on `api` from `commits` (the real messages, each with its
// real sequence in Nats-Sequence) at their sequence + `shift`, as a drifted replica would.
class drifted_replica {
 public:
  drifted_replica(const std::string& url, const std::string& api, const std::string& stream,
                  std::vector<detail::msg_ptr> commits, int shift)
      : stream_(stream),
        commits_(std::move(commits)),
        shift_(shift),
        responder_(url, api, [this](natsConnection* nc, natsMsg* m) { return answer(nc, m); }) {}
  const test_responder& responder() const { return responder_; }

 private:
  bool answer(natsConnection* nc, natsMsg* m) const {
    const auto req = nlohmann::json::parse(
        std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))));
    const auto from = req.value("seq", std::int64_t{0});
    const auto subject = req.value("next_by_subj", std::string{});
    for (const auto& c : commits_) {
      const auto seq = static_cast<std::int64_t>(detail::store::reply_sequence(c.get())) + shift_;
      if (seq < from || subject != natsMsg_GetSubject(c.get())) continue;
      natsMsg* out = nullptr;
      EXPECT_EQ(natsMsg_Create(&out, natsMsg_GetReply(m), nullptr, natsMsg_GetData(c.get()),
                               natsMsg_GetDataLength(c.get())),
                NATS_OK);
      const char** keys = nullptr;
      int count = 0;
      EXPECT_EQ(natsMsgHeader_Keys(c.get(), &keys, &count), NATS_OK);
      for (int i = 0; i < count; ++i) {
        const char* v = nullptr;
        if (natsMsgHeader_Get(c.get(), keys[i], &v) == NATS_OK) natsMsgHeader_Set(out, keys[i], v);
      }
      free(keys);  // NOLINT: nats.c allocates the array with malloc
      natsMsgHeader_Set(out, "Nats-Stream", stream_.c_str());
      natsMsgHeader_Set(out, "Nats-Subject", subject.c_str());
      natsMsgHeader_Set(out, "Nats-Sequence", std::to_string(seq).c_str());
      natsMsgHeader_Set(out, "Nats-Time-Stamp", "2026-12-04T10:00:00.000000000Z");
      const bool sent = natsConnection_PublishMsg(nc, out) == NATS_OK;
      natsMsg_Destroy(out);
      return sent;
    }
    return false;
  }
  std::string stream_;
  std::vector<detail::msg_ptr> commits_;
  int shift_;
  test_responder responder_;  // last: its thread calls answer() until it is destroyed
};

class drifted_reads : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto r = cluster_.start();
    ASSERT_TRUE(r) << r.error();
    auto c = connection::connect(cluster_.client_options());
    ASSERT_TRUE(c) << c.error();
    conn_.emplace(std::move(c).value());
    auto s = event_store::open(*conn_, options_);
    ASSERT_TRUE(s) << s.error();
    store_.emplace(std::move(s).value());
  }

  // Appends `n` commits to T/<id>, each after one of another aggregate (so that every sequence
  // has a neighbour a drifted replica can mistake it for); returns their sequences.
  std::vector<std::uint64_t> append_interleaved(const std::string& id, std::uint64_t n) {
    std::vector<std::uint64_t> seqs;
    std::uint64_t other = 0;
    for (std::uint64_t v = 1; v <= n; ++v) {
      auto o = store_->append({.aggregate_type = "T",
                               .aggregate_id = id + "-other",
                               .expected_sequence = other,
                               .version = v,
                               .event_types = "Made",
                               .body = "{}"});
      EXPECT_TRUE(o) << o.error();
      if (o) other = o->sequence;
      auto a = store_->append({.aggregate_type = "T",
                               .aggregate_id = id,
                               .expected_sequence = seqs.empty() ? 0 : seqs.back(),
                               .version = v,
                               .event_types = "Made",
                               .body = "{}"});
      EXPECT_TRUE(a) << a.error();
      if (a) seqs.push_back(a->sequence);
    }
    return seqs;
  }

  // The stored messages at `seqs`, as the leader has them.
  std::vector<detail::msg_ptr> leader_copies(const std::vector<std::uint64_t>& seqs) {
    auto st = state_with_api("$JS.API");
    std::vector<detail::msg_ptr> out;
    for (auto seq : seqs) {
      auto m = detail::store::from_leader(
          *st, {.stream = options_.stream, .sequence = seq, .what = "test"});
      EXPECT_TRUE(m && *m);
      if (m && *m) out.push_back(std::move(*m));
    }
    return out;
  }

  // The store's state for reads whose direct gets go to `api_prefix` (its leader gets do not).
  std::unique_ptr<detail::store_state> state_with_api(const std::string& api_prefix) {
    auto st = std::make_unique<detail::store_state>();
    st->options = options_;
    st->conn = detail::state_of(*conn_);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Prefix = api_prefix.c_str();
    jsCtx* js = nullptr;
    EXPECT_EQ(natsConnection_JetStream(&js, st->conn->nc.get(), &jo), NATS_OK);
    st->js.reset(js);
    return st;
  }

  const store_options options_{.stream = "RAW", .subject_prefix = "raw", .replicas = 3};
  temp_dir dir_;
  nats_cluster cluster_{dir_.path()};
  std::optional<connection> conn_;
  std::optional<event_store> store_;
};

// Two and three commits: read by direct gets (one or two before the head). With two, only the
// head's expectation shows the drift; with three, the second commit's does too.
TEST_P(drifted_reads, AReadThroughADriftedReplicaHandsOverTheLeadersCommits) {
  const int shift = GetParam();
  auto two = append_interleaved("two", 2), three = append_interleaved("three", 3);
  ASSERT_EQ(three.size(), 3u);
  auto copies = leader_copies(two);
  for (auto& m : leader_copies(three)) copies.push_back(std::move(m));
  const std::string api = "DRIFTED.API";
  drifted_replica replica(cluster_.url(0), api + ".DIRECT.GET." + options_.stream, options_.stream,
                          std::move(copies), shift);
  auto st = state_with_api(api);
  {  // a direct get is the drifted replica's answer
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.Sequence = 1;
    auto subject = detail::store::make_subject(options_, "T", "three");
    ASSERT_TRUE(subject) << subject.error();
    o.NextBySubject = subject->c_str();
    auto m = detail::store::direct_get(st->js.get(), options_.stream, o, "test");
    ASSERT_TRUE(m && *m);
    EXPECT_EQ(natsMsg_GetSequence(m->get()), three[0] + shift);
  }

  for (const auto& [id, seqs] : {std::pair{"two", two}, std::pair{"three", three}}) {
    SCOPED_TRACE(id);
    auto subject = detail::store::make_subject(options_, "T", id);
    ASSERT_TRUE(subject) << subject.error();
    auto head = leader_copies({seqs.back()});
    ASSERT_EQ(head.size(), 1u);
    std::vector<std::uint64_t> read_seqs, versions;
    auto r = detail::store::read_range(*st, *subject, 0, head[0].get(), seqs.back(),
                                       [&](natsMsg* m, std::uint64_t seq) -> result<void> {
                                         read_seqs.push_back(seq);
                                         auto v = detail::store::version_of(m, seq);
                                         if (!v) return std::move(v).error();
                                         versions.push_back(*v);
                                         return success();
                                       });
    ASSERT_TRUE(r) << r.error();
    read_seqs.push_back(seqs.back());
    versions.push_back(seqs.size());
    EXPECT_EQ(read_seqs, seqs);
    for (std::size_t i = 0; i < versions.size(); ++i) EXPECT_EQ(versions[i], i + 1);
  }
  // The reads went through it (and the check above).
  EXPECT_TRUE(replica.responder().answered_at_least(3)) << replica.responder().answered();
}

INSTANTIATE_TEST_SUITE_P(OneSequenceOff, drifted_reads, ::testing::Values(1, -1),
                         [](const auto& info) { return info.param > 0 ? "Ahead" : "Behind"; });

}  // namespace
}  // namespace jetsource::test
