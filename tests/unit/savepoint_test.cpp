// jetsource::sqlite::savepoint (a part of a transaction undone alone, RAII) and the SQLite result
// code kept in the error (error::native_code), on :memory: databases.
#include <jetsource/sqlite.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace {

namespace sqlite = jetsource::sqlite;
using jetsource::errc;

class SavepointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sqlite::database::open(":memory:");
    ASSERT_TRUE(db) << db.error();
    db_.emplace(std::move(db).value());
    ASSERT_TRUE(db_->execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"));
  }
  /// The keys in t, in order, as "1,2,3".
  std::string keys() {
    auto r = db_->query_one(
        "SELECT coalesce(group_concat(k, ','), '') FROM (SELECT k FROM t "
        "ORDER BY k)");
    EXPECT_TRUE(r && *r);
    return r && *r ? (*r)->get<std::string>(0) : "?";
  }
  std::optional<sqlite::database> db_;
};

TEST_F(SavepointTest, ReleaseKeepsItsChangesInTheTransaction) {
  auto tx = db_->begin();
  ASSERT_TRUE(tx) << tx.error();
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (1, 'a')"));
  auto sp = sqlite::savepoint::open(*tx, "part");
  ASSERT_TRUE(sp) << sp.error();
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (2, 'b')"));
  ASSERT_TRUE(sp->release());
  EXPECT_FALSE(sp->active());
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ(keys(), "1,2");
}

TEST_F(SavepointTest, RollbackUndoesOnlyItsPartAndTheTransactionGoesOn) {
  auto tx = db_->begin();
  ASSERT_TRUE(tx) << tx.error();
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (1, 'a')"));
  {
    auto sp = sqlite::savepoint::open(*tx, "part");
    ASSERT_TRUE(sp) << sp.error();
    ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (2, 'b')"));
    ASSERT_TRUE(sp->rollback());
    EXPECT_FALSE(sp->active());
  }
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (3, 'c')"));
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ(keys(), "1,3");
}

TEST_F(SavepointTest, DestroyedWithoutReleaseRollsBackItsPart) {
  auto tx = db_->begin();
  ASSERT_TRUE(tx) << tx.error();
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (1, 'a')"));
  {
    auto outer = sqlite::savepoint::open(*tx, "outer");
    ASSERT_TRUE(outer) << outer.error();
    ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (2, 'b')"));
    {
      auto inner = sqlite::savepoint::open(*tx, "inner");
      ASSERT_TRUE(inner) << inner.error();
      ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (3, 'c')"));
      sqlite::savepoint moved = std::move(inner).value();  // the moved-to one owns it
      EXPECT_TRUE(moved.active());
    }  // inner rolled back
    ASSERT_TRUE(outer->release());
  }
  EXPECT_TRUE(db_->in_transaction());  // the transaction itself goes on
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ(keys(), "1,2");
}

TEST_F(SavepointTest, NamesAreCheckedAndAnEndedSavepointCannotBeReleased) {
  auto tx = db_->begin();
  ASSERT_TRUE(tx) << tx.error();
  for (const char* bad : {"", "a b", "x;DROP TABLE t", "n-1"}) {
    auto sp = sqlite::savepoint::open(*tx, bad);
    ASSERT_FALSE(sp) << bad;
    EXPECT_TRUE(sp.error().is(errc::invalid_argument)) << sp.error();
  }
  auto sp = sqlite::savepoint::open(*tx, "once");
  ASSERT_TRUE(sp) << sp.error();
  ASSERT_TRUE(sp->release());
  EXPECT_FALSE(sp->release());
  EXPECT_TRUE(sp->rollback());  // nothing left to undo
  ASSERT_TRUE(tx->commit());
  auto finished = sqlite::savepoint::open(*tx, "late");
  ASSERT_FALSE(finished);
  EXPECT_TRUE(finished.error().is(errc::invalid_argument)) << finished.error();
}

TEST_F(SavepointTest, ErrorsKeepSqlitesExtendedResultCode) {
  ASSERT_TRUE(db_->execute("INSERT INTO t VALUES (1, 'a')"));
  auto dup = db_->execute("INSERT INTO t VALUES (1, 'b')");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().native_code, 1555) << dup.error();  // SQLITE_CONSTRAINT_PRIMARYKEY
  auto null = db_->execute("INSERT INTO t VALUES (2, NULL)");
  ASSERT_FALSE(null);
  EXPECT_EQ(null.error().native_code, 1299) << null.error();  // SQLITE_CONSTRAINT_NOTNULL
  auto syntax = db_->execute("SELEC 1");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().native_code, 1) << syntax.error();  // SQLITE_ERROR
  // Errors that do not come from SQLite have none.
  EXPECT_EQ(jetsource::make_error(errc::io, "x").native_code, 0);
}

}  // namespace
