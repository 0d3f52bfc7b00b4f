// The applier's version cache (projections/src/version_cache.hpp) and the applier's use of it
// in a batch that grows it and then rolls back: pure code and an in-memory database, no server.
#include "version_cache.hpp"
#include "applier.hpp"

#include "balances_projection.hpp"

#include <jetsource/detail/codec.hpp>
#include <jetsource/projector.hpp>

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace {

using jetsource::detail::version_cache;

std::string key(int i) {
  return "Account\x1f"
         "acct-" +
         std::to_string(i);
}

TEST(VersionCache, FindsWhatWasInsertedAndNothingElse) {
  version_cache c;
  EXPECT_EQ(c.find("a"), nullptr);  // empty: no slots yet
  for (int i = 0; i < 10'000; ++i)
    ASSERT_NE(c.insert(key(i), static_cast<std::uint64_t>(i)), nullptr);
  EXPECT_EQ(c.size(), 10'000u);
  for (int i = 0; i < 10'000; ++i) {
    auto* v = c.find(key(i));
    ASSERT_NE(v, nullptr) << key(i);
    EXPECT_EQ(*v, static_cast<std::uint64_t>(i));
  }
  // Prefixes, extensions and near misses of stored keys are other keys.
  EXPECT_EQ(c.find(key(10'000)), nullptr);
  EXPECT_EQ(c.find("Account\x1f"
                   "acct-1"
                   "0"),
            c.find(key(10)));
  EXPECT_EQ(c.find("Account\x1f"
                   "acct-"),
            nullptr);
  EXPECT_EQ(c.find("Account\x1f"
                   "acct-99999"),
            nullptr);
  EXPECT_EQ(c.find(""), nullptr);
  ASSERT_NE(c.insert("", 7), nullptr);  // the empty key is a key like another
  EXPECT_EQ(*c.find(""), 7u);
}

TEST(VersionCache, AValueWrittenThroughTheFoundPointerIsWhatTheNextFindSees) {
  version_cache c;
  *c.insert("k", 1) = 5;
  EXPECT_EQ(*c.find("k"), 5u);
  *c.find("k") = 9;
  EXPECT_EQ(*c.find("k"), 9u);
}

TEST(VersionCache, PointersStayValidForTheInsertsReserved) {
  version_cache c;
  std::vector<std::uint64_t*> handed_out;
  c.reserve(1000);
  for (int i = 0; i < 1000; ++i) handed_out.push_back(c.insert(key(i), 1));
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(handed_out[static_cast<std::size_t>(i)], c.find(key(i)));
  // Room for 500 more on top of the 1000: again nothing moves.
  c.reserve(500);
  auto* first = c.find(key(0));
  for (int i = 1000; i < 1500; ++i) c.insert(key(i), 1);
  EXPECT_EQ(first, c.find(key(0)));
}

TEST(VersionCache, ClearForgetsEverything) {
  version_cache c;
  for (int i = 0; i < 100; ++i) c.insert(key(i), 3);
  c.clear();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.find(key(5)), nullptr);
  c.insert(key(5), 4);
  EXPECT_EQ(*c.find(key(5)), 4u);
  EXPECT_EQ(c.find(key(6)), nullptr);
}

// One commit of `e` to account `id` at `version`, as the store would deliver it.
template <class E>
jetsource::detail::owned_commit commit_of(const std::string& id, std::uint64_t version,
                                          const E& e) {
  using one = std::variant<E>;
  one v{e};
  auto body = jetsource::detail::registry<one>::encode(std::span<const one>(&v, 1));
  EXPECT_TRUE(body) << body.error();
  return {"test.Account.0." + id,
          "Account",
          id,
          std::string(E::type_name),
          "commit-" + id + "-" + std::to_string(version),
          std::to_string(version),
          body ? *body : std::string()};
}

// A batch that adds hundreds of aggregates to the cache (it grows several times over) and then
// meets a poison message: the first pass rolls back and undoes the versions it set through the
// pointers the cache handed out, the second runs guarded. Those pointers must still be the
// cache's: the applier makes room for the batch's keys first (without it ASan reports a
// use after free in applier::undo).
TEST(VersionCache, ABatchThatGrowsTheCacheThenRollsBackUndoesThroughValidPointers) {
  using namespace jetsource;
  test::hooks().poison = true;
  auto proj = test::balances_projection();
  auto db = sqlite::database::open(":memory:");
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(detail::prepare_database(*db, proj, "TEST", "test"));
  detail::applier apply(proj);

  constexpr int accounts = 300;
  std::vector<detail::owned_commit> commits;
  for (int i = 0; i < accounts; ++i)
    commits.push_back(commit_of("a" + std::to_string(i), 1, bank::account_opened{"ann"}));
  commits.push_back(commit_of("a0", 2, bank::deposited{100, "poison"}));
  commits.push_back(commit_of("a1", 2, bank::deposited{7, ""}));
  std::vector<detail::envelope> batch;
  for (std::size_t i = 0; i < commits.size(); ++i) batch.push_back(commits[i].view(i + 1));

  auto out = apply.apply(*db, batch, 0);
  ASSERT_TRUE(out) << out.error();
  EXPECT_EQ(out->done.size(), commits.size());
  auto rows = db->query_one("SELECT count(*), sum(version) FROM applied_versions");
  ASSERT_TRUE(rows && *rows);
  EXPECT_EQ((*rows)->get<int>(0), accounts);
  EXPECT_EQ((*rows)->get<int>(1), accounts + 1);  // a1 is at version 2, a0 stayed at 1
  auto a1 = db->query_one("SELECT balance_cents FROM balances WHERE account_id = 'a1'");
  ASSERT_TRUE(a1 && *a1);
  EXPECT_EQ((*a1)->get<int>(0), 7);
  auto dl = read_dead_letters(*db);
  ASSERT_TRUE(dl) << dl.error();
  ASSERT_EQ(dl->size(), 1u);
  EXPECT_EQ(dl->front().aggregate_id, "a0");

  // Redelivered: every message is a duplicate now (the cache and the rows agree).
  std::vector<detail::envelope> again;
  for (std::size_t i = 0; i < commits.size(); ++i) again.push_back(commits[i].view(i + 1));
  auto dup = apply.apply(*db, again, 0);
  ASSERT_TRUE(dup) << dup.error();
  EXPECT_EQ(dup->events, 0u);
}

// A group commit writes its dedup rows together (write_versions: 64 per statement, the rest one
// by one), after the handlers. 150 commits over 40 accounts in one batch: two full statements,
// in which accounts appear twice (a later row updates the earlier one), and a tail of 22; the
// last commit of 18 accounts is in the second statement, of the other 22 in the tail. Every row
// ends at its account's last version and sequence, and an applier that knows nothing but the
// file (a restart) finds every redelivered commit a duplicate.
TEST(VersionCache, AGroupCommitWritesEveryAggregatesLastVersionOnce) {
  using namespace jetsource;
  test::hooks().poison = false;
  test::hooks().order_violations = 0;
  auto proj = test::balances_projection();
  auto db = sqlite::database::open(":memory:");
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(detail::prepare_database(*db, proj, "TEST", "test"));

  constexpr int accounts = 40, commits_count = 150;
  std::vector<detail::owned_commit> commits;
  for (int i = 0; i < commits_count; ++i) {
    const auto id = "a" + std::to_string(i % accounts);
    const auto version = static_cast<std::uint64_t>(i / accounts + 1);
    if (version == 1)
      commits.push_back(commit_of(id, version, bank::account_opened{"ann"}));
    else
      commits.push_back(commit_of(id, version, bank::deposited{10, ""}));
  }
  std::vector<detail::envelope> batch;
  for (std::size_t i = 0; i < commits.size(); ++i) batch.push_back(commits[i].view(i + 1));
  {
    detail::applier apply(proj);
    auto out = apply.apply(*db, batch, commits_count);
    ASSERT_TRUE(out) << out.error();
    EXPECT_EQ(out->events, static_cast<std::uint64_t>(commits_count));
  }
  auto rows = db->query(
      "SELECT aggregate_id, version, sequence FROM applied_versions ORDER BY aggregate_id");
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(accounts));
  for (const auto& r : *rows) {
    const int k = std::stoi(r.get<std::string>(0).substr(1));
    const int last = (commits_count - 1 - k) / accounts * accounts + k;  // its last commit
    EXPECT_EQ(r.get<std::uint64_t>(1), static_cast<std::uint64_t>(last / accounts + 1))
        << r.get<std::string>(0);
    EXPECT_EQ(r.get<std::uint64_t>(2), static_cast<std::uint64_t>(last + 1))
        << r.get<std::string>(0);
  }
  auto b = db->query_one("SELECT sum(balance_cents) FROM balances");
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->get<int>(0), (commits_count - accounts) * 10);

  detail::applier restarted(proj);
  std::vector<detail::envelope> again;
  for (std::size_t i = 0; i < commits.size(); ++i) again.push_back(commits[i].view(i + 1));
  auto dup = restarted.apply(*db, again, commits_count);
  ASSERT_TRUE(dup) << dup.error();
  EXPECT_EQ(dup->events, 0u);
  EXPECT_EQ(dup->duplicates, static_cast<std::uint64_t>(commits_count));
  EXPECT_EQ(test::hooks().order_violations.load(), 0);
}

}  // namespace
