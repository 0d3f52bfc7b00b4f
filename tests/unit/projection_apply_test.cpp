// The projection apply path without a server (jetsource::testing::projection_test): handlers,
// dedup, skipped and unknown types, dead letters with parking, retry and skip.
#include <jetsource/testing/projection_test.hpp>

#include "balances_projection.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace {

using jetsource::errc;
using jetsource::test::balances_projection;
using jetsource::test::hooks;
using jetsource::testing::projection_test;

struct balance {
  std::int64_t cents = -1;
  std::uint64_t version = 0;
};

balance balance_of(projection_test& t, const char* id) {
  auto row =
      t.db().query_one("SELECT balance_cents, version FROM balances WHERE account_id = ?1", id);
  EXPECT_TRUE(row) << row.error();
  if (!row || !*row) return {};
  return {(*row)->get<std::int64_t>(0), (*row)->get<std::uint64_t>(1)};
}

// What the library logs (its spdlog logger "jetsource") while it lives: "level: message" lines.
class captured_log {
 public:
  captured_log() {
    logger_ = spdlog::get("jetsource");
    if (!logger_) logger_ = spdlog::stderr_color_mt("jetsource");  // as the library makes it
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink_->set_pattern("%l: %v");
    logger_->sinks().push_back(sink_);
  }
  ~captured_log() { std::erase(logger_->sinks(), sink_); }
  std::string text() const { return out_.str(); }
  std::size_t count(std::string_view what) const {
    std::size_t n = 0;
    auto all = text();
    for (auto at = all.find(what); at != std::string::npos; at = all.find(what, at + 1)) ++n;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

class ProjectionApply : public ::testing::Test {
 protected:
  void SetUp() override {
    hooks().order_violations = 0;
    hooks().poison = true;
    ASSERT_FALSE(t.setup_error()) << *t.setup_error();
  }
  void TearDown() override { EXPECT_EQ(hooks().order_violations.load(), 0); }
  projection_test t{balances_projection()};
};

TEST_F(ProjectionApply, HandlersWriteTheReadModelAndTheDedupRow) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}, bank::deposited{500, ""}));
  ASSERT_TRUE(t.given("Account", "a1", bank::withdrawn{200}));
  auto b = balance_of(t, "a1");
  EXPECT_EQ(b.cents, 300);
  EXPECT_EQ(b.version, 3u);
  auto v =
      t.db().query_one("SELECT version, sequence FROM applied_versions WHERE aggregate_id = 'a1'");
  ASSERT_TRUE(v && *v);
  EXPECT_EQ((*v)->get<int>(0), 3);
  EXPECT_EQ((*v)->get<int>(1), 2);
  auto st = jetsource::read_status(t.db(), "balances");
  ASSERT_TRUE(st) << st.error();
  EXPECT_EQ(st->events_applied, 3u);
  EXPECT_EQ(st->max_applied_seq, 2u);
}

TEST_F(ProjectionApply, ARedeliveredCommitIsSkipped) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}));
  ASSERT_TRUE(t.given("Account", "a1", bank::deposited{100, ""}));
  ASSERT_TRUE(t.redeliver(2));
  ASSERT_TRUE(t.redeliver(1));
  EXPECT_EQ(balance_of(t, "a1").cents, 100);
  auto st = jetsource::read_status(t.db(), "balances");
  EXPECT_EQ(st->events_applied, 2u);
}

TEST_F(ProjectionApply, UnhandledAndUnknownTypesCountAsApplied) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}));
  ASSERT_TRUE(t.given("Account", "a1", bank::account_closed{}));  // not handled
  // A type nobody registered (a newer writer): skipped without decoding its body.
  ASSERT_TRUE(t.apply_commit("Account", "a1", "FutureEvent",
                             R"({"events":[{"type":"FutureEvent","v":1,"data":{}}]})"));
  ASSERT_TRUE(t.given("Account", "a1", bank::deposited{100, ""}));
  EXPECT_EQ(balance_of(t, "a1").version, 4u);
  EXPECT_EQ(jetsource::read_status(t.db(), "balances")->events_applied, 4u);
  hooks().order_violations = 0;  // versions 2 and 3 were skipped types: not a violation here
  auto dl = t.dead_letters();
  ASSERT_TRUE(dl);
  EXPECT_TRUE(dl->empty());
}

TEST_F(ProjectionApply, UpcastsOldSchemaVersions) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}));
  ASSERT_TRUE(t.given("Account", "a1", bank::deposited_v1{3}));  // 3 units -> 300 cents
  EXPECT_EQ(balance_of(t, "a1").cents, 300);
}

TEST_F(ProjectionApply, PoisonParksItsAggregateOnlyAndRetryAppliesInOrder) {
  ASSERT_TRUE(t.given("Account", "bad", bank::account_opened{"bob"}));
  ASSERT_TRUE(t.given("Account", "ok", bank::account_opened{"ann"}));
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{100, "poison"}));  // fails
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{10, ""}));         // parked behind
  ASSERT_TRUE(t.given("Account", "ok", bank::deposited{7, ""}));           // flows
  ASSERT_TRUE(t.given("Account", "bad", bank::withdrawn{5}));              // parked behind

  EXPECT_EQ(balance_of(t, "ok").cents, 7);
  EXPECT_EQ(balance_of(t, "bad").cents, 0);
  auto dl = t.dead_letters();
  ASSERT_TRUE(dl) << dl.error();
  ASSERT_EQ(dl->size(), 3u);
  EXPECT_EQ((*dl)[0].kind, "poison");
  EXPECT_EQ((*dl)[0].event_type, "Deposited");
  EXPECT_NE((*dl)[0].error.find("the note says poison"), std::string::npos) << (*dl)[0].error;
  EXPECT_EQ((*dl)[1].kind, "parked");
  EXPECT_EQ((*dl)[2].kind, "parked");
  EXPECT_EQ((*dl)[2].first_version, 4u);

  // Still failing: nothing moves, the attempt is counted.
  auto again = t.retry("Account", "bad");
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(*again, 3u);
  EXPECT_EQ(t.dead_letters()->front().attempts, 2);

  hooks().poison = false;  // "fix the handler"
  auto fixed = t.retry("Account", "bad");
  ASSERT_TRUE(fixed) << fixed.error();
  EXPECT_EQ(*fixed, 0u);
  EXPECT_EQ(balance_of(t, "bad").cents, 105);
  EXPECT_EQ(balance_of(t, "bad").version, 4u);
  EXPECT_TRUE(t.dead_letters()->empty());
  // And it flows again.
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{1, ""}));
  EXPECT_EQ(balance_of(t, "bad").cents, 106);
}

TEST_F(ProjectionApply, SkipCountsThePoisonAsAppliedAndReleasesTheRest) {
  ASSERT_TRUE(t.given("Account", "bad", bank::account_opened{"bob"}));
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{100, "poison"}));
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{10, ""}));
  auto r = t.skip("Account", "bad");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(balance_of(t, "bad").cents, 10);
  EXPECT_EQ(balance_of(t, "bad").version, 3u);
  hooks().order_violations = 0;  // the skipped version 2 is a gap the handler sees, by design
}

TEST_F(ProjectionApply, UndecodablePayloadOfAHandledTypeIsADeadLetter) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}));
  ASSERT_TRUE(
      t.apply_commit("Account", "a1", "Deposited",
                     R"({"events":[{"type":"Deposited","v":2,"data":{"amount_cents":"ten"}}]})"));
  ASSERT_TRUE(t.apply_commit("Account", "a2", "AccountOpened", "not json"));
  ASSERT_TRUE(t.apply_commit("Account", "a3", "Deposited",
                             R"({"events":[{"type":"Deposited","v":9,"data":{}}]})"));
  auto dl = t.dead_letters();
  ASSERT_TRUE(dl);
  ASSERT_EQ(dl->size(), 3u);
  EXPECT_NE((*dl)[0].error.find("decode_failed"), std::string::npos) << (*dl)[0].error;
  EXPECT_NE((*dl)[1].error.find("decode_failed"), std::string::npos) << (*dl)[1].error;
  EXPECT_NE((*dl)[2].error.find("no schema version 9"), std::string::npos) << (*dl)[2].error;
}

TEST_F(ProjectionApply, AHeaderBodyMismatchIsADeadLetter) {
  ASSERT_TRUE(
      t.apply_commit("Account", "a1", "AccountOpened,Deposited",
                     R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"x"}}]})"));
  auto dl = t.dead_letters();
  ASSERT_EQ(dl->size(), 1u);
  EXPECT_NE(dl->front().error.find("the body has 1 events"), std::string::npos)
      << dl->front().error;
  EXPECT_EQ(balance_of(t, "a1").cents, -1);  // nothing of it was kept
}

TEST_F(ProjectionApply, ADeadLetterNamesTheFailedEventTypeOnlyWhenOneFailed) {
  // The body as a whole does not match its headers: no event type failed.
  ASSERT_TRUE(
      t.apply_commit("Account", "a1", "AccountOpened,Deposited",
                     R"({"events":[{"type":"AccountOpened","v":1,"data":{"owner":"x"}}]})"));
  // A handler failed: its event type.
  ASSERT_TRUE(t.given("Account", "a2", bank::account_opened{"ann"}));
  ASSERT_TRUE(t.given("Account", "a2", bank::deposited{100, "poison"}));
  auto dl = t.dead_letters();
  ASSERT_TRUE(dl) << dl.error();
  ASSERT_EQ(dl->size(), 2u);
  EXPECT_EQ((*dl)[0].event_type, "") << (*dl)[0].error;
  EXPECT_EQ((*dl)[0].error, "decode_failed: the body has 1 events, Es-Events names 2");
  EXPECT_EQ((*dl)[1].event_type, "Deposited") << (*dl)[1].error;
  EXPECT_EQ((*dl)[1].error, "invalid_argument: Deposited: the note says poison");
}

TEST_F(ProjectionApply, EveryNewDeadLetterIsLoggedAsAWarningOnce) {
  captured_log log;
  ASSERT_TRUE(t.given("Account", "bad", bank::account_opened{"bob"}));     // sequence 1
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{100, "poison"}));  // 2: fails
  ASSERT_TRUE(t.given("Account", "bad", bank::deposited{10, ""}));         // 3: parked
  ASSERT_TRUE(t.redeliver(2));  // already a dead letter: not new
  ASSERT_TRUE(t.redeliver(3));
  EXPECT_EQ(log.count("warning: projection balances: Account bad sequence 2 is a dead letter "
                      "(invalid_argument: Deposited: the note says poison); later messages of "
                      "Account bad wait behind it until it is retried or skipped"),
            1u)
      << log.text();
  EXPECT_EQ(log.count("warning: projection balances: Account bad sequence 3 is parked behind its "
                      "dead letter"),
            1u)
      << log.text();
  EXPECT_EQ(log.count("warning: "), 2u) << log.text();
}

TEST(ProjectionSetup, MigrationsThatMatchNothingStopTheStart) {
  projection_test t(balances_projection().migrations("balance"));  // a typo
  ASSERT_TRUE(t.setup_error()) << "a projection without its tables would dead-letter everything";
  const auto& e = *t.setup_error();
  EXPECT_TRUE(e.is(errc::not_found)) << e;
  EXPECT_NE(e.message.find("projection balances: no migrations are embedded under \"balance\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.message.find("embedded: balances, "), std::string::npos) << e;  // what there is
  auto given = t.given("Account", "a1", bank::account_opened{"ann"});
  ASSERT_FALSE(given);
  EXPECT_TRUE(given.error().is(errc::not_found)) << given.error();
}

TEST_F(ProjectionApply, AVersionGapIsHeldUntilTheMissingCommitArrives) {
  ASSERT_TRUE(t.given("Account", "a1", bank::account_opened{"ann"}));
  auto deposit = [](int cents) {
    return fmt::format(
        R"({{"events":[{{"type":"Deposited","v":2,"data":{{"amount_cents":{},"note":""}}}}]}})",
        cents);
  };
  // Version 3 arrives first (as after a redelivery): held, not applied.
  auto early = t.apply_commit("Account", "a1", "Deposited", deposit(5), 3);
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().message.find("held"), std::string::npos) << early.error();
  EXPECT_EQ(balance_of(t, "a1").version, 1u);
  // Version 2 arrives: both apply, in order.
  ASSERT_TRUE(t.apply_commit("Account", "a1", "Deposited", deposit(2), 2));
  EXPECT_EQ(balance_of(t, "a1").cents, 7);
  EXPECT_EQ(balance_of(t, "a1").version, 3u);
}

}  // namespace

namespace {
// -- the subject filter ------------------------------------------------------------------------

TEST(ProjectionFollow, DerivesTheFilterFromTheAggregateTypeAndTheStore) {
  jetsource::store_options bank{.stream = "BANK", .subject_prefix = "bank"};
  auto p = jetsource::projection("balances", 1).follow<bank::account>(bank);
  EXPECT_EQ(p.subject_filter(), "bank.Account.>");
  EXPECT_EQ(jetsource::projection("x", 1).follow("bank.*.7.*").subject_filter(), "bank.*.7.*");
}
}  // namespace
