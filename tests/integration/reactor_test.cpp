// Reactors (issue 12, ADR 0014) in one process on a real nats-server: a single member handles
// every event once in version order and resumes from its checkpoint after a graceful stop; a
// failing handler is retried with backoff, then its aggregate parks while others flow, and
// retry / skip requests resolve it; queue mode shares the work between two members.
#include "reactor_fixture.hpp"

#include <jetsource/metrics.hpp>

#include <atomic>

namespace jetsource::test {
namespace {

using std::chrono::milliseconds;

TEST_F(reactor_test, SingleMemberHandlesEveryEventOnceAndResumesFromItsCheckpoint) {
  auto expected = open_accounts("acc-", 40);
  for (int round = 0; round < 5; ++round)
    for (auto& [id, v] : expected) {
      run(id, bank::deposit{100 + round, "r"});
      ++v;
    }
  recorder rec;
  metrics::registry registry;
  auto first_options = options("one");
  first_options.metrics = &registry;
  auto m = reactor_member::start(*conn_, audit_reactor(rec, "one"), first_options);
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until([&] { return rec.size() >= 240; }, milliseconds(30000))) << rec.size();
  EXPECT_EQ(first_handling_violation(rec.events()), "");
  EXPECT_EQ(m->partitions().size(), 64u);
  const auto text = metrics::render_prometheus(registry);
  EXPECT_NE(text.find("jetsource_reactor_handled_total{reactor=\"audit\"} 240"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("jetsource_reactor_partitions{reactor=\"audit\"} 64"), std::string::npos);
  EXPECT_NE(text.find("jetsource_reactor_parked{reactor=\"audit\"} 0"), std::string::npos);

  const auto last = store_->last_sequence().value();
  // The checkpoints travel with the renewals (every lease/3): the status shows them soon.
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*conn_, "TEST", "audit");
        return st && st->position == last;
      },
      milliseconds(5000)));
  auto st = read_reactor_status(*conn_, "TEST", "audit");
  ASSERT_TRUE(st) << st.error();
  EXPECT_EQ(st->mode, "ordered");
  ASSERT_EQ(st->members.size(), 1u);
  EXPECT_EQ(st->members[0].instance, "one");
  EXPECT_EQ(st->members[0].partitions.size(), 64u);
  EXPECT_TRUE(st->parked.empty());

  ASSERT_TRUE(m->stop());
  auto after_stop = read_reactor_status(*conn_, "TEST", "audit");
  ASSERT_TRUE(after_stop);
  EXPECT_TRUE(after_stop->members.empty()) << "a stopped member removes its key";
  EXPECT_EQ(after_stop->position, last) << "stop() writes the last checkpoints";

  for (auto& [id, v] : expected) {
    run(id, bank::deposit{7, "after"});
    ++v;
  }
  auto again = reactor_member::start(*conn_, audit_reactor(rec, "one"), options("one"));
  ASSERT_TRUE(again) << again.error();
  ASSERT_TRUE(wait_until([&] { return rec.size() >= 280; }, milliseconds(30000))) << rec.size();
  std::this_thread::sleep_for(milliseconds(300));  // anything handled twice would show by now
  auto events = rec.events();
  EXPECT_EQ(events.size(), 280u) << "an event was handled twice after a graceful stop";
  EXPECT_TRUE(covers(events, expected));
  EXPECT_EQ(first_handling_violation(events), "");
  std::set<std::pair<std::string, std::uint64_t>> once;
  for (const auto& e : events)
    EXPECT_TRUE(once.emplace(e.id, e.version).second) << e.id << e.version;
  ASSERT_TRUE(again->stop());
}

TEST_F(reactor_test, ContextCarriesTheCommitsMetadataAndAStableIdempotencyKey) {
  command_context ctx;
  ctx.correlation_id = "corr-1";
  ctx.causation_id = "cause-1";
  ASSERT_TRUE(repo_->execute("acc-m", bank::open_account{"m", 500}, ctx));
  std::mutex mu;
  std::vector<std::string> seen;
  auto r =
      reactor("meta")
          .follow("test.Account.>")
          .on<bank::deposited>([&](reaction_context& cx, const bank::deposited& d) {
            std::lock_guard lk(mu);
            seen.push_back(fmt::format("{} {} {} {} {} {} {}", cx.idempotency_key(),
                                       cx.event_index(), cx.correlation_id(), cx.causation_id(),
                                       d.amount_cents, cx.timestamp().empty() ? "no-ts" : "ts",
                                       cx.commit_id().empty() ? "no-id" : "id"));
          });
  auto m = reactor_member::start(*conn_, r, options("x"));
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lk(mu);
        return !seen.empty();
      },
      milliseconds(10000)));
  std::lock_guard lk(mu);
  EXPECT_EQ(seen[0], "meta:Account:acc-m:2 1 corr-1 cause-1 500 ts id");
}

TEST_F(reactor_test, FailingHandlerRetriesThenParksWhileOthersFlowAndRetryOrSkipResolveIt) {
  std::atomic<bool> sink_down{true};
  std::atomic<int> bad_calls{0};
  recorder rec;
  auto fail = [&](const reaction_context& cx) {
    if (cx.aggregate_id() == "bad" && cx.version() == 2 && sink_down.load()) {
      ++bad_calls;
      return true;
    }
    return cx.aggregate_id() == "poison" && cx.version() == 2;  // never handled: skipped
  };
  auto o = options("one");
  o.retry.attempts = 3;
  o.retry.first_backoff = milliseconds(20);
  auto m = reactor_member::start(*conn_, audit_reactor(rec, "one", "audit", fail), o);
  ASSERT_TRUE(m) << m.error();

  run("bad", bank::open_account{"b", 0});
  for (int i = 0; i < 3; ++i) run("bad", bank::deposit{10 + i, "d"});  // versions 2..4
  auto expected = open_accounts("ok-", 20);
  for (auto& [id, v] : expected) {
    run(id, bank::deposit{5, "d"});
    ++v;
  }
  ASSERT_TRUE(wait_until([&] { return covers(rec.events(), expected); }, milliseconds(20000)))
      << "other aggregates must flow while one is retried and parked";
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*conn_, "TEST", "audit");
        return st && st->parked.size() == 1;
      },
      milliseconds(10000)));
  auto st = read_reactor_status(*conn_, "TEST", "audit");
  ASSERT_TRUE(st);
  const auto& p = st->parked.at(0);
  EXPECT_EQ(p.aggregate_id, "bad");
  EXPECT_EQ(p.version, 2u);
  EXPECT_EQ(p.attempts, 3);
  EXPECT_EQ(p.event_type, "Deposited");
  EXPECT_NE(p.error.find("the sink is down"), std::string::npos) << p.error;
  EXPECT_EQ(st->dead_letters, 1u);
  EXPECT_EQ(bad_calls.load(), 3) << "3 attempts in all, in process";
  run("bad", bank::deposit{99, "while parked"});  // version 5: waits behind the parked one

  // Fixed: a retry handles the parked event and those behind it, in order.
  sink_down = false;
  auto retried = request_reactor_retry(*conn_, "TEST", "audit", "Account", "bad");
  ASSERT_TRUE(retried) << retried.error();
  std::vector<std::uint64_t> bad_versions;
  for (const auto& e : rec.events())
    if (e.id == "bad") bad_versions.push_back(e.version);
  EXPECT_EQ(bad_versions, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(request_reactor_retry(*conn_, "TEST", "audit", "", "bad").error().code,
            errc::not_found);

  // A poison event: skip moves on to the next versions.
  run("poison", bank::open_account{"p", 0});
  run("poison", bank::deposit{1, "poison"});
  run("poison", bank::deposit{2, "next"});
  ASSERT_TRUE(wait_until(
      [&] {
        auto s2 = read_reactor_status(*conn_, "TEST", "audit");
        return s2 && s2->parked.size() == 1;
      },
      milliseconds(10000)));
  auto skipped = request_reactor_skip(*conn_, "TEST", "audit", "", "poison");
  ASSERT_TRUE(skipped) << skipped.error();
  std::vector<std::uint64_t> poison_versions;
  for (const auto& e : rec.events())
    if (e.id == "poison") poison_versions.push_back(e.version);
  EXPECT_EQ(poison_versions, (std::vector<std::uint64_t>{1, 3}));
  auto end = read_reactor_status(*conn_, "TEST", "audit");
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->parked.empty());
  ASSERT_TRUE(m->stop());
}

TEST_F(reactor_test, QueueModeSharesTheWorkAndHandlesEveryEvent) {
  auto expected = open_accounts("q-", 60);
  for (int round = 0; round < 4; ++round)
    for (auto& [id, v] : expected) {
      run(id, bank::deposit{1, "q"});
      ++v;
    }
  recorder rec;
  auto slow = [](const reaction_context&) {
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    return false;
  };
  auto o1 = options("a");
  o1.mode = delivery::queue;
  o1.batch = 20;
  o1.max_buffered = 40;
  auto o2 = o1;
  o2.instance = "b";
  auto a = reactor_member::start(*conn_, audit_reactor(rec, "a", "work", slow), o1);
  ASSERT_TRUE(a) << a.error();
  auto b = reactor_member::start(*conn_, audit_reactor(rec, "b", "work", slow), o2);
  ASSERT_TRUE(b) << b.error();
  ASSERT_TRUE(wait_until([&] { return covers(rec.events(), expected); }, milliseconds(30000)));
  std::map<std::string, int> by;
  for (const auto& e : rec.events()) ++by[e.instance];
  EXPECT_GT(by["a"], 0);
  EXPECT_GT(by["b"], 0);
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = read_reactor_status(*conn_, "TEST", "work");
        return st && st->position == store_->last_sequence().value();
      },
      milliseconds(10000)));
  auto st = read_reactor_status(*conn_, "TEST", "work");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->mode, "queue");
  EXPECT_EQ(st->members.size(), 2u);
  ASSERT_TRUE(a->stop());
  ASSERT_TRUE(b->stop());
}

TEST_F(reactor_test, AMismatchedGroupOrBadNameIsRefused) {
  recorder rec;
  auto bad = reactor_member::start(*conn_, audit_reactor(rec, "x", "bad.name"), options("x"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  auto m = reactor_member::start(*conn_, audit_reactor(rec, "x"), options("x"));
  ASSERT_TRUE(m) << m.error();
  auto other = reactor("audit").follow("test.Other.>");
  auto clash = reactor_member::start(*conn_, other, options("y"));
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, errc::stream_config_mismatch) << clash.error();
  EXPECT_EQ(read_reactor_status(*conn_, "TEST", "nobody").error().code, errc::not_found);
  ASSERT_TRUE(m->stop());
}

}  // namespace
}  // namespace jetsource::test
