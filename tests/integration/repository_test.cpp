// repository<A> against a real nats-server: load/execute round trips, conflicts, idempotent
// commands, snapshots, upcasting of stored history, bad stored data.
#include <jetsource/repository.hpp>

#include "nats_fixture.hpp"
#include "pausing_proxy.hpp"
#include "test_domain.hpp"

#include <thread>

using namespace bank;
using jetsource::errc;

namespace {

class RepositoryTest : public jetsource::test::nats_test {
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
  std::uint64_t last_seq() {
    auto s = store_->last_sequence();
    EXPECT_TRUE(s) << s.error();
    return s ? *s : 0;
  }
  // Appends a hand-made commit (as another service or an older version would have written it).
  void append_raw(const std::string& id, std::uint64_t version, const std::string& types,
                  const std::string& body) {
    auto r = store_->append({.aggregate_type = "Account",
                             .aggregate_id = id,
                             .version = version,
                             .event_types = types,
                             .body = body});
    ASSERT_TRUE(r) << r.error();
  }
  std::optional<jetsource::event_store> store_;
};

TEST_F(RepositoryTest, ExecuteThenLoadInAFreshRepository) {
  auto r = repo();
  auto opened = r.execute("acc-1", open_account{"ada", 500});
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(opened->events, 2u);
  EXPECT_EQ(opened->version, 2u);
  ASSERT_TRUE(r.execute("acc-1", deposit{250, "pay"}));
  ASSERT_TRUE(r.execute("acc-1", withdraw{100}));

  auto fresh = repo();
  auto l = fresh.load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 4u);
  EXPECT_EQ(l->state.owner(), "ada");
  EXPECT_EQ(l->state.balance_cents(), 650);
  EXPECT_EQ(l->state.notes(), (std::vector<std::string>{"initial", "pay"}));
  // The multi-event open landed as one commit: 3 commits for 4 events.
  EXPECT_EQ(last_seq(), 3u);
  auto log = store_->read("Account", "acc-1");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->commits.size(), 3u);
  EXPECT_EQ(log->commits[0].event_types, "AccountOpened,Deposited");
  EXPECT_EQ(log->commits[0].version, 2u);
}

TEST_F(RepositoryTest, NewAggregateLoadsEmpty) {
  auto l = repo().load("nobody");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->version, 0u);
  EXPECT_EQ(l->sequence, 0u);
  EXPECT_FALSE(l->state.open());
}

TEST_F(RepositoryTest, RejectionAppendsNothing) {
  auto r = repo();
  ASSERT_TRUE(r.execute("acc-1", open_account{"ada", 100}));
  auto before = last_seq();
  auto w = r.execute("acc-1", withdraw{101});
  ASSERT_FALSE(w);
  EXPECT_TRUE(w.error().is(errc::rejected));
  EXPECT_TRUE(w.error().is(account_error::insufficient_funds));
  EXPECT_EQ(last_seq(), before);
}

TEST_F(RepositoryTest, InvalidIdIsRefusedBeforeAnyIo) {
  auto w = repo().execute("acc.1", open_account{"ada"});
  ASSERT_FALSE(w);
  EXPECT_TRUE(w.error().is(errc::invalid_id)) << w.error();
  auto l = repo().load("a b");
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(errc::invalid_id)) << l.error();
  EXPECT_EQ(last_seq(), 0u);
}

TEST_F(RepositoryTest, StaleCachedCopyIsCaughtAndRetried) {
  auto a = repo();
  auto b = repo();
  ASSERT_TRUE(a.execute("acc-1", open_account{"ada"}));
  ASSERT_TRUE(b.execute("acc-1", deposit{100, "b1"}));  // b now caches version 2
  ASSERT_TRUE(a.execute("acc-1", deposit{50, "a1"}));   // a's copy was stale: retried
  auto again = b.execute("acc-1", deposit{10, "b2"});   // b's copy is stale now
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->attempts, 2);
  EXPECT_EQ(again->version, 4u);
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->state.balance_cents(), 160);
  EXPECT_EQ(l->state.notes(), (std::vector<std::string>{"b1", "a1", "b2"}));
}

TEST_F(RepositoryTest, RejectionOnAStaleCopyIsCheckedAgainstTheStream) {
  auto a = repo();
  auto b = repo();
  ASSERT_TRUE(b.execute("acc-1", open_account{"ada"}));  // b caches a zero balance
  ASSERT_TRUE(a.execute("acc-1", deposit{100, ""}));
  auto w = b.execute("acc-1", withdraw{60});  // stale copy says "insufficient"; fresh says yes
  ASSERT_TRUE(w) << w.error();
  EXPECT_EQ(w->version, 3u);
  ASSERT_TRUE(a.execute("acc-1", close_account{}));
  auto d = b.execute("acc-1", deposit{1, ""});  // stale copy says open; the stream says closed
  ASSERT_FALSE(d);
  EXPECT_TRUE(d.error().is(account_error::closed)) << d.error();
}

TEST_F(RepositoryTest, SameCommandIdLandsOnce) {
  auto r = repo();
  ASSERT_TRUE(r.execute("acc-1", open_account{"ada"}));
  auto first = r.execute("acc-1", deposit{100, "once"}, {.command_id = "cmd-1"});
  ASSERT_TRUE(first) << first.error();
  EXPECT_EQ(first->status, jetsource::append_status::appended);
  auto second = repo().execute("acc-1", deposit{100, "once"}, {.command_id = "cmd-1"});
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(second->status, jetsource::append_status::already_appended);
  EXPECT_EQ(second->sequence, first->sequence);
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->state.balance_cents(), 100);
  EXPECT_EQ(l->version, 2u);
}

TEST_F(RepositoryTest, ReusingACommandIdForAnotherAggregateIsRefused) {
  auto r = repo();
  ASSERT_TRUE(r.execute("acc-1", open_account{"ada"}, {.command_id = "cmd-7"}));
  auto other = r.execute("acc-2", open_account{"bob"}, {.command_id = "cmd-7"});
  ASSERT_FALSE(other);
  EXPECT_TRUE(other.error().is(errc::invalid_argument)) << other.error();
  EXPECT_NE(other.error().message.find("cmd-7"), std::string::npos) << other.error();
  EXPECT_EQ(last_seq(), 1u);
  auto l = repo().load("acc-2");
  ASSERT_TRUE(l);
  EXPECT_FALSE(l->state.open());
}

TEST_F(RepositoryTest, SnapshotsAreUsedAndNeverRequired) {
  auto r = repo({.snapshot_every = 10});
  ASSERT_TRUE(r.execute("acc-1", open_account{"ada"}));
  for (int i = 0; i < 24; ++i) ASSERT_TRUE(r.execute("acc-1", deposit{1, std::to_string(i)}));
  ASSERT_TRUE(store_->flush());  // snapshots are written asynchronously
  auto snap = store_->load_snapshot("Account", "acc-1");
  ASSERT_TRUE(snap) << snap.error();
  ASSERT_TRUE(snap->has_value());
  EXPECT_EQ((*snap)->version, 20u);

  auto with_snapshot = repo({.snapshot_every = 10}).load("acc-1");
  auto without = repo({.snapshot_every = 0}).load("acc-1");
  ASSERT_TRUE(with_snapshot) << with_snapshot.error();
  ASSERT_TRUE(without) << without.error();
  EXPECT_EQ(with_snapshot->version, 25u);
  EXPECT_EQ(with_snapshot->state.balance_cents(), 24);
  EXPECT_EQ(with_snapshot->state.notes(), without->state.notes());
  EXPECT_EQ(with_snapshot->sequence, without->sequence);

  // A corrupt or foreign snapshot is ignored: the events still give the right state.
  ASSERT_TRUE(store_->save_snapshot("Account", "acc-1", {25, 25, 1, "{not json"}));
  ASSERT_TRUE(store_->flush());
  auto after_corruption = repo({.snapshot_every = 10}).load("acc-1");
  ASSERT_TRUE(after_corruption) << after_corruption.error();
  EXPECT_EQ(after_corruption->state.balance_cents(), 24);
  ASSERT_TRUE(store_->save_snapshot("Account", "acc-1", {3, 999, 1, R"({"state":{}})"}));
  ASSERT_TRUE(store_->flush());
  auto bad_sequence = repo({.snapshot_every = 10}).load("acc-1");
  ASSERT_TRUE(bad_sequence) << bad_sequence.error();
  EXPECT_EQ(bad_sequence->version, 25u);
  EXPECT_EQ(bad_sequence->state.balance_cents(), 24);
  // A snapshot at the right sequence but claiming another version is not trusted either.
  auto head = store_->head("Account", "acc-1");
  ASSERT_TRUE(head && *head);
  ASSERT_TRUE(
      store_->save_snapshot("Account", "acc-1", {3, (*head)->sequence, 1, R"({"state":{}})"}));
  ASSERT_TRUE(store_->flush());
  auto wrong_version = repo({.snapshot_every = 10}).load("acc-1");
  ASSERT_TRUE(wrong_version) << wrong_version.error();
  EXPECT_EQ(wrong_version->version, 25u);
  EXPECT_EQ(wrong_version->state.balance_cents(), 24);
}

TEST_F(RepositoryTest, OldSchemaVersionsInTheStreamAreUpcast) {
  append_raw("acc-1", 1, "AccountOpened",
             R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"old"}}]})");
  append_raw("acc-1", 2, "Deposited",
             R"({"events":[{"type":"Deposited","v":1,"data":{"amount":7}}]})");
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.balance_cents(), 700);
  EXPECT_EQ(l->state.notes(), (std::vector<std::string>{"(v1)"}));
  // And new commands continue the history.
  auto d = repo().execute("acc-1", deposit{1, "new"});
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->version, 3u);
}

TEST_F(RepositoryTest, UnknownEventTypeInTheStreamIsAClearError) {
  append_raw("acc-1", 1, "Mystery", R"({"events":[{"type":"Mystery","v":1,"data":{}}]})");
  auto l = repo().load("acc-1");
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(errc::unknown_event_type)) << l.error();
  EXPECT_NE(l.error().message.find("Mystery"), std::string::npos) << l.error();
}

TEST_F(RepositoryTest, CorruptedPayloadInTheStreamIsAClearError) {
  append_raw("acc-1", 1, "AccountOpened",
             R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":)");
  auto l = repo().load("acc-1");
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(errc::decode_failed)) << l.error();
  auto e = repo().execute("acc-1", deposit{1, ""});
  ASSERT_FALSE(e);
  EXPECT_TRUE(e.error().is(errc::decode_failed)) << e.error();
}

TEST_F(RepositoryTest, VersionGapInTheStreamIsAClearError) {
  append_raw("acc-1", 1, "AccountOpened",
             R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"x"}}]})");
  append_raw("acc-1", 5, "AccountClosed",
             R"({"events":[{"type":"AccountClosed","v":1,"data":{}}]})");
  auto l = repo().load("acc-1");
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(errc::decode_failed)) << l.error();
}

TEST_F(RepositoryTest, CommandsFailCleanlyWhileTheServerIsDownAndWorkAfterRestart) {
  auto r = repo();
  ASSERT_TRUE(r.execute("acc-1", open_account{"ada"}));
  auto port = server_->port();
  server_->kill_hard();
  server_.reset();
  auto down = repo({.timeout_retries = 0}).execute("acc-2", open_account{"bob"});
  ASSERT_FALSE(down);
  EXPECT_TRUE(down.error().is(errc::unreachable) || down.error().is(errc::timeout)) << down.error();
  start_server(port);
  // The client reconnects by itself; give it a moment, then everything acknowledged is there.
  jetsource::result<jetsource::executed> up = jetsource::make_error(errc::internal, "not run");
  for (int i = 0; i < 100 && !up; ++i) {
    up = r.execute("acc-1", deposit{5, ""});
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  ASSERT_TRUE(up) << up.error();
  auto l = repo().load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.balance_cents(), 5);
  EXPECT_TRUE(l->state.open());
}

// A command re-run with its id by a caller that saw no answer, in another process (a new
// repository), when its commit landed and is the head: the state after it makes the re-run a
// rejection (opening an open account) or a no-op (closing a closed one). The answer is
// already_appended either way, under both concurrency schemes; it was a rejection, and a no-op
// "appended" with no event.
TEST_F(RepositoryTest, AReRunWhoseOwnCommitMadeItInvalidAnswersAlreadyAppended) {
  for (auto scheme : {jetsource::concurrency_scheme::subject_sequence,
                      jetsource::concurrency_scheme::commit_slot}) {
    const bool slot = scheme == jetsource::concurrency_scheme::commit_slot;
    SCOPED_TRACE(slot ? "commit_slot" : "subject_sequence");
    jetsource::store_options so;
    so.stream = slot ? "SLOT" : "SUBJ";
    so.subject_prefix = slot ? "slot" : "subj";
    so.concurrency = scheme;
    auto store = open_store(so);
    const std::string id = "acc-rerun";
    auto opened = jetsource::repository<account>{store}.execute(id, open_account{"ann", 0},
                                                                {.command_id = "cmd-open"});
    ASSERT_TRUE(opened) << opened.error();
    auto again = jetsource::repository<account>{store}.execute(id, open_account{"ann", 0},
                                                               {.command_id = "cmd-open"});
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(again->status, jetsource::append_status::already_appended);
    EXPECT_EQ(again->sequence, opened->sequence);
    EXPECT_EQ(again->events, 1u);

    auto closed = jetsource::repository<account>{store}.execute(id, close_account{},
                                                                {.command_id = "cmd-close"});
    ASSERT_TRUE(closed) << closed.error();
    jetsource::repository<account> warm{store};  // its cached copy is the closed account
    ASSERT_TRUE(warm.load(id));
    auto reclosed = warm.execute(id, close_account{}, {.command_id = "cmd-close"});
    ASSERT_TRUE(reclosed) << reclosed.error();
    EXPECT_EQ(reclosed->status, jetsource::append_status::already_appended);
    EXPECT_EQ(reclosed->sequence, closed->sequence);
    // Another command with the same effect is not this one: closing twice changes nothing.
    auto other = warm.execute(id, close_account{}, {.command_id = "cmd-close-2"});
    ASSERT_TRUE(other) << other.error();
    EXPECT_EQ(other->status, jetsource::append_status::appended);
    EXPECT_EQ(other->events, 0u);
    auto stored = store.last_sequence();
    ASSERT_TRUE(stored) << stored.error();
    EXPECT_EQ(*stored, closed->sequence);  // nothing appended twice
  }
}

// A command whose append timed out although it landed (its ack held back by a proxy past the
// ack timeout), re-run with its command id after another command landed on the aggregate: under
// the commit-slot scheme (ADR 0015) the re-run decides on a newer state and would get a new
// slot; the repository resends the commit in doubt first and answers already_appended. Without
// that, the deposit counts twice (balance 201).
TEST_F(RepositoryTest, AReRunOfACommandWhoseAckWasLostLandsOnceAfterAnotherCommandLanded) {
  jetsource::test::pausing_proxy proxy(server_->port(), "PUB test.Account.",
                                       std::chrono::milliseconds{1000});
  jetsource::connection_options co;
  co.urls = {proxy.url()};
  auto via_proxy = jetsource::connection::connect(co);
  ASSERT_TRUE(via_proxy) << via_proxy.error();
  jetsource::store_options so;
  so.stream = "TEST";
  so.subject_prefix = "test";
  so.concurrency = jetsource::concurrency_scheme::commit_slot;
  so.ack_timeout = std::chrono::milliseconds{500};
  auto slot_store = jetsource::event_store::open(*via_proxy, so);
  ASSERT_TRUE(slot_store) << slot_store.error();
  jetsource::repository<account> a{*slot_store, {.timeout_retries = 0}};
  jetsource::repository<account> b{*store_};
  ASSERT_TRUE(b.execute("acc-doubt", open_account{"ann", 0}));
  const auto before = last_seq();

  auto lost = a.execute("acc-doubt", deposit{100, "x"}, {.command_id = "cmd-x"});
  ASSERT_TRUE(proxy.triggered());
  ASSERT_FALSE(lost) << "the ack came in time";
  EXPECT_TRUE(lost.error().is(errc::timeout)) << lost.error();
  ASSERT_EQ(last_seq(), before + 1) << "the unacknowledged commit did not land";

  auto other = b.execute("acc-doubt", deposit{1, "y"}, {.command_id = "cmd-y"});
  ASSERT_TRUE(other) << other.error();
  proxy.wait_released();  // the late ack reaches `a` (and is ignored)
  auto rerun = a.execute("acc-doubt", deposit{100, "x"}, {.command_id = "cmd-x"});
  ASSERT_TRUE(rerun) << rerun.error();
  EXPECT_EQ(rerun->status, jetsource::append_status::already_appended);
  EXPECT_EQ(last_seq(), before + 2);
  auto l = jetsource::repository<account>{*store_, {.snapshot_every = 0}}.load("acc-doubt");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.balance_cents(), 101);
}

}  // namespace
