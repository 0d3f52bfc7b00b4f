// Cold loads with the defaults. Each commit carries the state it leads to (ADR 0022): a load is one
// get of the head, whose state is the whole load when it is in the repository's schema and
// decodes; anything else (no state, another schema, an undecodable one) falls back to the
// snapshot stream and the commits (ADR 0017). A state too large for its commit goes to the
// snapshot stream, read together with the head. A snapshot there is used as the whole state only
// when it is at the head and agrees on the version; a copy loaded from either is still checked by
// optimistic concurrency.
#include <jetsource/repository.hpp>

#include <nats/nats.h>
#include <nlohmann/json.hpp>

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
  // Appends one Deposited commit by hand at the head of `id`, carrying `state` (as a writer in
  // another language could); `state` empty: none.
  jetsource::append_result deposit_by_hand(const std::string& id, std::string state,
                                           int schema = 1) {
    auto h = head(id);
    if (state.empty()) schema = 0;
    auto r = store_->append(
        {.aggregate_type = "Account",
         .aggregate_id = id,
         .expected_sequence = h.sequence,
         .version = h.version + 1,
         .event_types = "Deposited",
         .body = R"({"events":[{"type":"Deposited","v":2,"data":{"amount_cents":1,"note":"h"}}]})",
         .state = std::move(state),
         .state_schema = schema});
    EXPECT_TRUE(r) << r.error();
    return r ? *r : jetsource::append_result{};
  }
  // The state a head carries: the value of its body's member "state".
  static std::string state_in(const jetsource::commit_head& h) {
    auto body = nlohmann::json::parse(h.body);
    return body.contains("state") ? body["state"].dump() : std::string{};
  }
  std::optional<jetsource::event_store> store_;
};

// The snapshot-stream path of ADR 0017: states too large to ride in their commit.
jetsource::repository_options snapshots_apart() {
  return {.head_state_max_bytes = 0};
}

TEST_F(ColdLoadTest, DefaultsCarryTheStateInEachCommitAndALoadTakesItFromTheHead) {
  auto writer = repo();
  ASSERT_TRUE(writer.execute("acc-1", open_account{"ada", 500}));  // 2 events
  ASSERT_TRUE(writer.execute("acc-1", deposit{250, "pay"}));
  ASSERT_TRUE(writer.execute("acc-2", open_account{"bob", 777}));
  auto h1 = head("acc-1");
  EXPECT_EQ(h1.state_schema, 1);
  const auto ada = state_in(h1);
  EXPECT_NE(ada.find(R"("balance_cents_":750)"), std::string::npos) << ada;
  // The commit is the snapshot: nothing goes to the snapshot stream.
  ASSERT_TRUE(store_->flush());
  auto none = store_->load_snapshot("Account", "acc-1");
  ASSERT_TRUE(none) << none.error();
  EXPECT_FALSE(none->has_value());

  auto loaded = repo().load("acc-1");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->version, 3u);
  EXPECT_EQ(loaded->sequence, h1.sequence);
  EXPECT_EQ(loaded->state.balance_cents(), 750);

  // Proof that the head's state is the whole load: a commit whose state is bob's makes a default
  // load return bob; a load without snapshots replays the events and still gives ada's.
  deposit_by_hand("acc-1", state_in(head("acc-2")));
  auto planted = repo().load("acc-1");
  ASSERT_TRUE(planted) << planted.error();
  EXPECT_EQ(planted->state.owner(), "bob");
  EXPECT_EQ(planted->version, 4u);
  auto from_events = repo({.snapshot_every = 0}).load("acc-1");
  ASSERT_TRUE(from_events) << from_events.error();
  EXPECT_EQ(from_events->state.owner(), "ada");
  EXPECT_EQ(from_events->state.balance_cents(), 751);

  auto absent = repo().load("acc-none");
  ASSERT_TRUE(absent) << absent.error();
  EXPECT_EQ(absent->version, 0u);
  EXPECT_EQ(absent->sequence, 0u);
}

TEST_F(ColdLoadTest, AHeadStateThatDoesNotFitIsIgnored) {
  ASSERT_TRUE(repo().execute("acc-1", open_account{"ada", 100}));
  ASSERT_TRUE(repo().execute("acc-2", open_account{"bob", 5}));
  const auto bob = state_in(head("acc-2"));
  // Another schema than the repository's: not read, the events are.
  deposit_by_hand("acc-1", bob, 7);
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.owner(), "ada");
  EXPECT_EQ(l->state.balance_cents(), 101);
  auto other_schema = repo({.snapshot_schema = 7}).load("acc-1");  // ... but by one of that schema
  ASSERT_TRUE(other_schema) << other_schema.error();
  EXPECT_EQ(other_schema->state.owner(), "bob");
  // Valid JSON that is not an account's state: replayed.
  deposit_by_hand("acc-1", R"({"open_":"not a bool"})");
  auto undecodable = repo().load("acc-1");
  ASSERT_TRUE(undecodable) << undecodable.error();
  EXPECT_EQ(undecodable->state.owner(), "ada");
  EXPECT_EQ(undecodable->state.balance_cents(), 102);
  EXPECT_EQ(undecodable->version, 4u);
  // A head without a state (a writer that keeps none): the commits are read.
  deposit_by_hand("acc-1", "");
  EXPECT_EQ(head("acc-1").state_schema, 0);
  auto plain = repo().load("acc-1");
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_EQ(plain->state.balance_cents(), 103);
  EXPECT_EQ(plain->version, 5u);
}

TEST_F(ColdLoadTest, AStateLargerThanTheLimitGoesToTheSnapshotStream) {
  auto writer = repo({.head_state_max_bytes = 200});
  ASSERT_TRUE(writer.execute("acc-1", open_account{"ada", 100}));
  EXPECT_EQ(head("acc-1").state_schema, 1);  // small enough
  ASSERT_TRUE(writer.execute("acc-1", deposit{5, std::string(300, 'n')}));
  auto h = head("acc-1");
  EXPECT_EQ(h.state_schema, 0);                             // too large: not in the commit ...
  EXPECT_EQ(snapshot_at("acc-1", 3).sequence, h.sequence);  // ... but in the snapshot stream
  for (int i = 0; i < 2; ++i) {  // the head alone first, then the head and the snapshot at once
    auto l = repo().load("acc-1");
    ASSERT_TRUE(l) << l.error();
    EXPECT_EQ(l->version, 3u);
    EXPECT_EQ(l->state.balance_cents(), 105);
    EXPECT_EQ(l->state.notes().back().size(), 300u);
  }
}

TEST_F(ColdLoadTest, ASnapshotAtTheHeadIsTheWholeLoad) {
  auto writer = repo(snapshots_apart());
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
  ASSERT_TRUE(repo(snapshots_apart()).execute("acc-1", open_account{"ada", 100}));
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
  auto writer = repo(snapshots_apart());
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

TEST_F(ColdLoadTest, OptimisticConcurrencyCatchesACopyLoadedFromTheHeadsState) {
  auto a = repo();
  ASSERT_TRUE(a.execute("acc-1", open_account{"ada", 100}));
  ASSERT_EQ(head("acc-1").state_schema, 1);
  auto copy = repo().load("acc-1");  // from the state the head carries
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
  auto writer = repo(snapshots_apart());
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
