// Cold loads with the defaults (ADR 0017): a repository keeps a snapshot at the head of every
// aggregate with `serialize`, and a load asks for the head and the snapshot at once. A snapshot is
// used as the whole state only when it is at the head and agrees on the version; anything else
// (behind the head, another version, a deleted snapshot stream) falls back to the stream, and a
// copy loaded from a snapshot is still checked by optimistic concurrency.
#include <jetsource/repository.hpp>

#include <nats/nats.h>

#include "nats_fixture.hpp"
#include "test_domain.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <thread>

using namespace bank;
using jetsource::errc;

namespace {

class ColdLoadTest : public jetsource::test::nats_test {
 protected:
  void SetUp() override {
    nats_test::SetUp();
    store_.emplace(open_store());
  }
  void TearDown() override {
    store_.reset();
    nats_test::TearDown();
  }
  jetsource::repository<account> repo(jetsource::repository_options o = {}) {
    return jetsource::repository<account>{*store_, o};
  }
  // The aggregate's head (its last commit).
  jetsource::commit_head head(const std::string& id) {
    auto h = store_->head("Account", id);
    EXPECT_TRUE(h && *h);
    return h && *h ? **h : jetsource::commit_head{};
  }
  // The stored snapshot once it has reached `version` (snapshots are written asynchronously: the
  // store's flush waits for their acks).
  jetsource::event_store::snapshot snapshot_at(const std::string& id, std::uint64_t version) {
    EXPECT_TRUE(store_->flush());
    auto s = store_->load_snapshot("Account", id);
    EXPECT_TRUE(s) << s.error();
    EXPECT_TRUE(s && s->has_value());
    if (!s || !s->has_value()) return {};
    EXPECT_EQ((*s)->version, version);
    return **s;
  }
  std::optional<jetsource::event_store> store_;
};

TEST_F(ColdLoadTest, DefaultsKeepASnapshotAtTheHeadAndALoadTakesIt) {
  auto writer = repo();
  ASSERT_TRUE(writer.execute("acc-1", open_account{"ada", 500}));  // 2 events
  ASSERT_TRUE(writer.execute("acc-1", deposit{250, "pay"}));
  ASSERT_TRUE(writer.execute("acc-2", open_account{"bob", 777}));
  auto s1 = snapshot_at("acc-1", 3);
  EXPECT_EQ(s1.sequence, head("acc-1").sequence);
  auto s2 = snapshot_at("acc-2", 2);

  auto loaded = repo().load("acc-1");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->version, 3u);
  EXPECT_EQ(loaded->sequence, s1.sequence);
  EXPECT_EQ(loaded->state.balance_cents(), 750);

  // Proof that a snapshot at the head is the whole load: plant bob's state at ada's head (same
  // version and sequence) and a default load returns it; a load without snapshots reads the
  // events and still gives ada's.
  auto h = head("acc-1");
  ASSERT_TRUE(store_->save_snapshot("Account", "acc-1", {h.version, h.sequence, 1, s2.body}));
  snapshot_at("acc-1", 3);
  auto planted = repo().load("acc-1");
  ASSERT_TRUE(planted) << planted.error();
  EXPECT_EQ(planted->state.owner(), "bob");
  auto from_events = repo({.snapshot_every = 0}).load("acc-1");
  ASSERT_TRUE(from_events) << from_events.error();
  EXPECT_EQ(from_events->state.owner(), "ada");
  EXPECT_EQ(from_events->state.balance_cents(), 750);

  auto none = repo().load("acc-none");
  ASSERT_TRUE(none) << none.error();
  EXPECT_EQ(none->version, 0u);
  EXPECT_EQ(none->sequence, 0u);
}

TEST_F(ColdLoadTest, ASnapshotBehindTheHeadIsCaughtUpFromTheStream) {
  ASSERT_TRUE(repo().execute("acc-1", open_account{"ada", 100}));
  auto s = snapshot_at("acc-1", 2);
  // Another writer that keeps no snapshots (snapshot_every = 0) moves the head past it.
  auto other = repo({.snapshot_every = 0});
  ASSERT_TRUE(other.execute("acc-1", deposit{5, "a"}));
  ASSERT_TRUE(other.execute("acc-1", deposit{7, "b"}));
  ASSERT_EQ(snapshot_at("acc-1", 2).sequence, s.sequence);

  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 4u);
  EXPECT_EQ(l->sequence, head("acc-1").sequence);
  EXPECT_EQ(l->state.balance_cents(), 112);
}

TEST_F(ColdLoadTest, ASnapshotAtTheHeadWithAnotherVersionIsNotTrusted) {
  auto writer = repo();
  ASSERT_TRUE(writer.execute("acc-1", open_account{"ada", 100}));
  ASSERT_TRUE(writer.execute("acc-1", deposit{5, "a"}));
  auto good = snapshot_at("acc-1", 3);
  auto h = head("acc-1");
  // The right sequence, but it claims version 2 (written by a buggy or foreign writer).
  ASSERT_TRUE(store_->save_snapshot("Account", "acc-1", {2, h.sequence, 1, good.body}));
  snapshot_at("acc-1", 2);
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 3u);
  EXPECT_EQ(l->state.balance_cents(), 105);
  // A snapshot past the head (a stream recreated under it) is ignored as well.
  ASSERT_TRUE(store_->save_snapshot("Account", "acc-1", {3, h.sequence + 1000, 1, good.body}));
  snapshot_at("acc-1", 3);
  auto past = repo().load("acc-1");
  ASSERT_TRUE(past) << past.error();
  EXPECT_EQ(past->sequence, h.sequence);
  EXPECT_EQ(past->state.balance_cents(), 105);
}

TEST_F(ColdLoadTest, OptimisticConcurrencyCatchesACopyLoadedFromASnapshot) {
  auto a = repo();
  ASSERT_TRUE(a.execute("acc-1", open_account{"ada", 100}));
  snapshot_at("acc-1", 2);
  auto copy = repo().load("acc-1");  // from the snapshot at the head
  ASSERT_TRUE(copy) << copy.error();
  ASSERT_EQ(copy->version, 2u);

  auto b = repo();  // another process's repository
  ASSERT_TRUE(b.execute("acc-1", deposit{50, "b"}));
  // An append decided on the (now stale) copy is refused by the stream.
  auto stale =
      store_->append({.aggregate_type = "Account",
                      .aggregate_id = "acc-1",
                      .expected_sequence = copy->sequence,
                      .version = copy->version + 1,
                      .event_types = "Withdrawn",
                      .body = R"([{"type":"Withdrawn","v":1,"data":{"amount_cents":1}}])"});
  ASSERT_FALSE(stale);
  EXPECT_TRUE(stale.error().is(errc::conflict)) << stale.error();

  // a's cached copy is stale too: a withdrawal only b's deposit allows is caught, reloaded and
  // accepted.
  auto w = a.execute("acc-1", withdraw{150});
  ASSERT_TRUE(w) << w.error();
  EXPECT_EQ(w->version, 4u);
  EXPECT_GE(w->attempts, 2);
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 4u);
  EXPECT_EQ(l->state.balance_cents(), 0);
}

TEST_F(ColdLoadTest, LoadsWorkWhenTheSnapshotStreamIsDeleted) {
  auto writer = repo();
  ASSERT_TRUE(writer.execute("acc-1", open_account{"ada", 100}));
  snapshot_at("acc-1", 2);
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, server_->url().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  EXPECT_EQ(js_DeleteStream(js, "TEST_SNAPSHOTS", nullptr, nullptr), NATS_OK);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);

  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 2u);
  EXPECT_EQ(l->state.balance_cents(), 100);
  ASSERT_TRUE(repo().execute("acc-1", deposit{1, "x"}));
  auto again = repo().load("acc-1");
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->version, 3u);
}

}  // namespace
