// jetsource::sqlite: binding and reading every type, the statement cache, transactions, busy
// databases, and SQLite errors mapped to jetsource errors (real files in a temp dir, :memory:).
#include <jetsource/sqlite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sqlite = jetsource::sqlite;
using jetsource::errc;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetsource-sqlite-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  std::string file(std::string_view name) const { return (dir_ / name).string(); }

  static sqlite::database open(const std::string& path, const sqlite::options& o = {}) {
    auto db = sqlite::database::open(path, o);
    EXPECT_TRUE(db) << db.error();
    return std::move(db).value();
  }

  fs::path dir_;
};

TEST_F(SqliteTest, BindsAndReadsEveryType) {
  auto db = open(file("types.db"));
  ASSERT_TRUE(db.execute_script(
      "CREATE TABLE t (i64, i, b, d, s, sv, cstr, some, none, null_, bl, u64, f)"));
  const std::string text("caf\xC3\xA9 \0 nul", 11);
  const std::vector<std::byte> bytes{std::byte{0}, std::byte{0xff}, std::byte{7}};
  auto r = db.execute(
      "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
      std::numeric_limits<std::int64_t>::min(), -7, true, 2.5, text, std::string_view("view"),
      "c-string", std::optional<std::int64_t>(42), std::optional<std::string>{}, nullptr,
      sqlite::blob{bytes.data(), bytes.size()}, std::uint64_t{1} << 63 >> 1, 1.5f);
  ASSERT_TRUE(r) << r.error();

  auto row = db.query_one("SELECT * FROM t");
  ASSERT_TRUE(row) << row.error();
  ASSERT_TRUE(*row);
  const sqlite::row& values = **row;
  ASSERT_EQ(values.size(), 13u);
  EXPECT_EQ(values.get<std::int64_t>(0), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(values.get<int>(1), -7);
  EXPECT_EQ(values.get<bool>(2), true);
  EXPECT_EQ(values.get<double>(3), 2.5);
  EXPECT_EQ(values.get<std::string>(4), text);
  EXPECT_EQ(values.get<std::string>(5), "view");
  EXPECT_EQ(values.get<std::string>(6), "c-string");
  EXPECT_EQ(values.get<std::optional<std::int64_t>>(7), 42);
  EXPECT_TRUE(values.is_null(8));
  EXPECT_EQ(values.get<std::optional<std::string>>(8), std::nullopt);
  EXPECT_TRUE(values.is_null(9));
  EXPECT_EQ(values.get<std::int64_t>(9), 0);  // NULL reads as 0, like sqlite3_column_int64
  EXPECT_EQ(values.get<std::string>(9), "");
  EXPECT_EQ(values.get<std::vector<std::byte>>(10), bytes);
  EXPECT_EQ(values.get<std::uint64_t>(11), std::uint64_t{1} << 62);
  EXPECT_EQ(values.get<float>(12), 1.5f);
  EXPECT_EQ(values.get<std::string>(3), "2.5");  // converted like SQLite does
}

TEST_F(SqliteTest, StatementStepsAndReadsColumns) {
  auto db = open(":memory:");
  ASSERT_TRUE(
      db.execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT, score REAL);"
                        "INSERT INTO t VALUES (1, 'a', 1.25), (2, NULL, NULL);"));
  auto st = db.prepare("SELECT k, name, score FROM t WHERE k >= ?1 ORDER BY k");
  ASSERT_TRUE(st) << st.error();
  ASSERT_TRUE(st->bind(1, 1));
  EXPECT_EQ(st->column_count(), 3);
  EXPECT_EQ(st->column_name(1), "name");

  auto has = st->step();
  ASSERT_TRUE(has && *has);
  EXPECT_EQ(st->column_int64(0), 1);
  EXPECT_EQ(st->column_text(1), "a");
  EXPECT_EQ(st->column_double(2), 1.25);
  EXPECT_EQ(st->column<std::optional<std::string>>(1), "a");

  has = st->step();
  ASSERT_TRUE(has && *has);
  EXPECT_TRUE(st->column_is_null(1));
  EXPECT_EQ(st->column<std::optional<double>>(2), std::nullopt);
  EXPECT_EQ(st->current_row().get<std::int64_t>(0), 2);

  has = st->step();
  ASSERT_TRUE(has);
  EXPECT_FALSE(*has);

  st->reset();  // bindings kept: runs again
  has = st->step();
  ASSERT_TRUE(has && *has);
  EXPECT_EQ(st->column_int64(0), 1);
}

TEST_F(SqliteTest, QueryReturnsAllRowsAndQueryOneNothingWhenEmpty) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER)"));
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(db.execute("INSERT INTO t VALUES (?1)", k));
  auto rows = db.query("SELECT k FROM t WHERE k > ?1 ORDER BY k", 1);
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[2].get<int>(0), 4);
  auto none = db.query_one("SELECT k FROM t WHERE k = ?1", 99);
  ASSERT_TRUE(none) << none.error();
  EXPECT_FALSE(*none);
}

TEST_F(SqliteTest, UnsignedAboveInt64IsRefused) {
  auto db = open(":memory:");
  auto r = db.execute("SELECT ?1", std::numeric_limits<std::uint64_t>::max());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  EXPECT_NE(r.error().message.find("SELECT ?1"), std::string::npos) << r.error();
}

// bind_all stops at the first value SQLite refuses (or cannot hold) and names its parameter.
TEST_F(SqliteTest, ABindErrorNamesItsParameterAndTheSql) {
  auto db = open(":memory:");
  auto extra = db.execute("SELECT ?1", 1, 2);  // no ?2: SQLite's "column index out of range"
  ASSERT_FALSE(extra);
  EXPECT_TRUE(extra.error().is(errc::invalid_argument)) << extra.error();
  EXPECT_NE(extra.error().message.find("bind ?2"), std::string::npos) << extra.error();
  EXPECT_NE(extra.error().message.find("SELECT ?1"), std::string::npos) << extra.error();

  auto big = db.execute("SELECT ?1, ?2, ?3", 1, std::numeric_limits<std::uint64_t>::max(), 3);
  ASSERT_FALSE(big);
  EXPECT_TRUE(big.error().is(errc::invalid_argument)) << big.error();
  EXPECT_NE(big.error().message.find("bind ?2"), std::string::npos) << big.error();

  // The statement is fine for its next use, with every value bound anew.
  auto row = db.query_one("SELECT ?1, ?2, ?3", 1, 2, 3);
  ASSERT_TRUE(row) << row.error();
  ASSERT_TRUE(*row);
  EXPECT_EQ((*row)->get<int>(2), 3);
}

TEST_F(SqliteTest, ACachedStatementNeverCarriesAnEarlierUsesValues) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (a TEXT, b TEXT)"));
  const std::string sql = "INSERT INTO t VALUES (?1, ?2)";
  {
    std::string a = "first-a", b = "first-b";  // bound without a copy, gone after the call
    ASSERT_TRUE(db.execute(sql, a, b));
  }
  ASSERT_TRUE(db.execute(sql, std::string("second-a")));  // fewer values: ?2 is NULL
  auto st = db.prepare(sql);                              // prepare: nothing bound
  ASSERT_TRUE(st);
  ASSERT_TRUE(st->run());
  auto rows = db.query("SELECT a, b FROM t ORDER BY rowid");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].get<std::string>(1), "first-b");
  EXPECT_EQ((*rows)[1].get<std::string>(0), "second-a");
  EXPECT_TRUE((*rows)[1].is_null(1));
  EXPECT_TRUE((*rows)[2].is_null(0));
  EXPECT_TRUE((*rows)[2].is_null(1));
}

TEST_F(SqliteTest, StatementsAreCachedBySqlText) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER)"));
  const std::size_t before = db.cached_statements();
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(db.execute("INSERT INTO t VALUES (?1)", k));
  EXPECT_EQ(db.cached_statements(), before + 1);
  {
    // The same SQL in use twice at once: two statements, both kept afterwards.
    auto outer = db.prepare("SELECT count(*) FROM t");
    auto inner = db.prepare("SELECT count(*) FROM t");
    ASSERT_TRUE(outer && inner);
    ASSERT_TRUE(*outer->step() && *inner->step());
    EXPECT_EQ(outer->column_int64(0), 100);
    EXPECT_EQ(inner->column_int64(0), 100);
  }
  EXPECT_EQ(db.cached_statements(), before + 3);
  // A statement from the cache comes back reset and unbound.
  auto st = db.prepare("INSERT INTO t VALUES (?1)");
  ASSERT_TRUE(st);
  ASSERT_TRUE(st->run());
  auto nulls = db.query_one("SELECT count(*) FROM t WHERE k IS NULL");
  ASSERT_TRUE(nulls && *nulls);
  EXPECT_EQ((*nulls)->get<int>(0), 1);
  ASSERT_TRUE(db.execute("UPDATE t SET k = k + 1 WHERE k < ?1", 10));
  EXPECT_EQ(db.changes(), 10);
  // Move-assigning a statement hands the old one back.
  auto a = db.prepare("SELECT 1");
  auto b = db.prepare("SELECT 2");
  ASSERT_TRUE(a && b);
  const std::size_t cached = db.cached_statements();
  *a = std::move(*b);
  EXPECT_EQ(db.cached_statements(), cached + 1);
  ASSERT_TRUE(*a->step());
  EXPECT_EQ(a->column_int64(0), 2);
}

// execute() binds its text and blob arguments without copying them (they outlive the call);
// the statement goes back to the cache unbound, so its next user never reads the freed text.
TEST_F(SqliteTest, TextThatExecuteBorrowedIsNeverReadByTheStatementsNextUser) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (a TEXT, b BLOB)"));
  const char* insert = "INSERT INTO t VALUES (?1, ?2)";
  {
    std::string a(200, 'a'), b(300, 'b');
    ASSERT_TRUE(db.execute(insert, a, sqlite::blob{b.data(), b.size()}));
  }                              // both freed here
  auto st = db.prepare(insert);  // the cached statement
  ASSERT_TRUE(st);
  ASSERT_TRUE(st->bind(1, std::string(50, 'c')));  // copied: a temporary
  ASSERT_TRUE(st->run());
  auto rows = db.query("SELECT a, length(a), b IS NULL FROM t ORDER BY rowid");
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].get<std::string>(0), std::string(200, 'a'));
  EXPECT_EQ((*rows)[1].get<std::string>(0), std::string(50, 'c'));
  EXPECT_EQ((*rows)[1].get<int>(2), 1);  // ?2 was not bound by this user: NULL
  // Borrowing again through the same statement, text that changes between uses.
  for (int i = 0; i < 50; ++i) {
    std::string a = "row-" + std::to_string(i);
    ASSERT_TRUE(db.execute(insert, a, nullptr));
  }
  auto last = db.query_one("SELECT a FROM t ORDER BY rowid DESC LIMIT 1");
  ASSERT_TRUE(last && *last);
  EXPECT_EQ((*last)->get<std::string>(0), "row-49");
}

// The cache remembers where recent SQL texts were; the same address holding other SQL of the
// same length later is other SQL.
TEST_F(SqliteTest, OtherSqlAtTheSameAddressIsAnotherStatement) {
  auto db = open(":memory:");
  std::string sql = "SELECT 1";
  const char* where = sql.data();
  auto one = db.query_one(sql);
  ASSERT_TRUE(one && *one);
  EXPECT_EQ((*one)->get<int>(0), 1);
  sql[7] = '2';  // same buffer, same length
  ASSERT_EQ(sql.data(), where);
  auto two = db.query_one(sql);
  ASSERT_TRUE(two && *two);
  EXPECT_EQ((*two)->get<int>(0), 2);
  sql[7] = '1';
  EXPECT_EQ((*db.query_one(sql))->get<int>(0), 1);
}

TEST_F(SqliteTest, PrepareTakesOneStatementAndScriptsSeveral) {
  auto db = open(":memory:");
  auto r = db.prepare("CREATE TABLE a (x); CREATE TABLE b (y)");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  auto ok = db.prepare("SELECT 1;  \n");
  EXPECT_TRUE(ok) << ok.error();

  ASSERT_TRUE(
      db.execute_script("-- two tables\nCREATE TABLE a (x);\nCREATE TABLE b (y);\n-- end\n"));
  auto bad = db.execute_script("INSERT INTO a VALUES (1);\nINSERT INTO missing VALUES (2);");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(errc::invalid_argument)) << bad.error();
  EXPECT_NE(bad.error().message.find("INSERT INTO missing VALUES (2);"), std::string::npos)
      << bad.error();
  EXPECT_NE(bad.error().message.find("no such table"), std::string::npos) << bad.error();
}

TEST_F(SqliteTest, TransactionRollsBackWhenDestroyedWithoutCommit) {
  auto db = open(file("rollback.db"));
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER)"));
  {
    auto tx = db.begin();
    ASSERT_TRUE(tx) << tx.error();
    ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (?1)", 1));
    EXPECT_TRUE(db.in_transaction());
  }
  EXPECT_FALSE(db.in_transaction());
  auto count = db.query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(count && *count);
  EXPECT_EQ((*count)->get<int>(0), 0);
}

TEST_F(SqliteTest, CommittedTransactionIsKeptAndSeenByAnotherConnection) {
  auto db = open(file("commit.db"));
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER)"));
  {
    auto tx = db.begin();
    ASSERT_TRUE(tx) << tx.error();
    ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (?1)", 1));
    ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (?1)", 2));
    auto c = tx->commit();
    ASSERT_TRUE(c) << c.error();
    EXPECT_FALSE(tx->active());
    auto again = tx->commit();
    EXPECT_FALSE(again);
  }
  auto other = open(file("commit.db"));
  auto count = other.query_one("SELECT sum(k) FROM t");
  ASSERT_TRUE(count && *count);
  EXPECT_EQ((*count)->get<int>(0), 3);
}

TEST_F(SqliteTest, ExplicitRollbackAndMovedTransaction) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER)"));
  auto tx = db.begin();
  ASSERT_TRUE(tx);
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (1)"));
  sqlite::transaction moved = std::move(tx).value();
  ASSERT_TRUE(moved.execute("INSERT INTO t VALUES (2)"));
  ASSERT_TRUE(moved.rollback());
  EXPECT_FALSE(db.in_transaction());
  auto count = db.query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(count && *count);
  EXPECT_EQ((*count)->get<int>(0), 0);
}

TEST_F(SqliteTest, BusyDatabaseFailsFastWithATransientError) {
  auto writer = open(file("busy.db"));
  ASSERT_TRUE(writer.execute("CREATE TABLE t (k INTEGER)"));
  auto other = open(file("busy.db"), {.busy_timeout = std::chrono::milliseconds(50)});

  auto held = writer.begin();
  ASSERT_TRUE(held) << held.error();
  ASSERT_TRUE(held->execute("INSERT INTO t VALUES (1)"));

  const auto start = std::chrono::steady_clock::now();
  auto blocked = other.begin();
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(blocked);
  EXPECT_TRUE(blocked.error().is(errc::busy)) << blocked.error();
  EXPECT_TRUE(sqlite::is_busy(blocked.error())) << blocked.error();
  EXPECT_NE(blocked.error().message.find("BEGIN IMMEDIATE"), std::string::npos) << blocked.error();
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_FALSE(other.in_transaction());

  // Readers are not blocked by the writer in WAL mode, and see the last commit.
  auto count = other.query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(count && *count) << count.error();
  EXPECT_EQ((*count)->get<int>(0), 0);

  ASSERT_TRUE(held->commit());
  auto retried = other.begin();
  ASSERT_TRUE(retried) << retried.error();
  EXPECT_FALSE(sqlite::is_busy(jetsource::make_error(errc::io, "disk I/O error")));
}

TEST_F(SqliteTest, ErrorsCarryTheSqlAndSqlitesMessage) {
  auto db = open(":memory:");
  auto syntax = db.execute("SELEC 1");
  ASSERT_FALSE(syntax);
  EXPECT_TRUE(syntax.error().is(errc::invalid_argument)) << syntax.error();
  EXPECT_NE(syntax.error().message.find("SELEC 1"), std::string::npos) << syntax.error();
  EXPECT_NE(syntax.error().message.find("syntax error"), std::string::npos) << syntax.error();

  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"));
  ASSERT_TRUE(db.execute("INSERT INTO t VALUES (?1, ?2)", 1, "a"));
  auto dup = db.execute("INSERT INTO t VALUES (?1, ?2)", 1, "b");
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(errc::invalid_argument)) << dup.error();
  EXPECT_NE(dup.error().message.find("UNIQUE constraint failed: t.k"), std::string::npos)
      << dup.error();
  EXPECT_NE(dup.error().message.find("INSERT INTO t VALUES (?1, ?2)"), std::string::npos)
      << dup.error();
  EXPECT_FALSE(sqlite::is_busy(dup.error()));

  auto null = db.execute("INSERT INTO t VALUES (?1, ?2)", 2, nullptr);
  ASSERT_FALSE(null);
  EXPECT_NE(null.error().message.find("NOT NULL constraint failed"), std::string::npos)
      << null.error();

  // A failed statement does not poison the cached one.
  EXPECT_TRUE(db.execute("INSERT INTO t VALUES (?1, ?2)", 2, "b"));
}

TEST_F(SqliteTest, FullDatabaseIsAnIoError) {
  auto db = open(file("full.db"));
  ASSERT_TRUE(db.execute_script("CREATE TABLE t (v BLOB); PRAGMA max_page_count = 8;"));
  auto tx = db.begin();
  ASSERT_TRUE(tx);
  const std::string big(64 * 1024, 'x');
  auto r = tx->execute("INSERT INTO t VALUES (?1)", big);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::io)) << r.error();
  EXPECT_NE(r.error().message.find("full"), std::string::npos) << r.error();
}

TEST_F(SqliteTest, OpensFilesInWalModeWithTheOptions) {
  auto db = open(file("wal.db"), {.synchronous = sqlite::synchronous::full,
                                  .cache_size_kib = 8192,
                                  .page_size = 1024,
                                  .wal_autocheckpoint_pages = 4000});
  auto mode = db.query_one("PRAGMA journal_mode");
  ASSERT_TRUE(mode && *mode);
  EXPECT_EQ((*mode)->get<std::string>(0), "wal");
  EXPECT_EQ((*db.query_one("PRAGMA synchronous"))->get<int>(0), 2);
  EXPECT_EQ((*db.query_one("PRAGMA cache_size"))->get<int>(0), -8192);
  EXPECT_EQ((*db.query_one("PRAGMA page_size"))->get<int>(0), 1024);
  EXPECT_EQ((*db.query_one("PRAGMA wal_autocheckpoint"))->get<int>(0), 4000);
  EXPECT_EQ((*db.query_one("PRAGMA foreign_keys"))->get<int>(0), 1);
  EXPECT_EQ(db.path(), file("wal.db"));
}

TEST_F(SqliteTest, MemoryDatabaseAndMoves) {
  auto db = open(":memory:");
  ASSERT_TRUE(db.execute("CREATE TABLE t (k)"));
  sqlite::database moved = std::move(db);
  ASSERT_TRUE(moved.execute("INSERT INTO t VALUES (1)"));
  auto gone = db.execute("SELECT 1");  // NOLINT(bugprone-use-after-move): tested on purpose
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is(errc::invalid_argument)) << gone.error();
  auto tx = moved.begin();
  ASSERT_TRUE(tx);
  ASSERT_TRUE(tx->execute("INSERT INTO t VALUES (2)"));
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ((*moved.query_one("SELECT count(*) FROM t"))->get<int>(0), 2);
}

TEST_F(SqliteTest, ReadOnlyDatabaseRefusesWritesWithAnIoError) {
  {
    auto db = open(file("ro.db"));
    ASSERT_TRUE(db.execute("CREATE TABLE t (k)"));
  }
  auto db = open(file("ro.db"), {.read_only = true});
  auto r = db.execute("INSERT INTO t VALUES (1)");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::io)) << r.error();
  EXPECT_NE(r.error().message.find("readonly"), std::string::npos) << r.error();
  EXPECT_NE(r.error().message.find("INSERT INTO t"), std::string::npos) << r.error();
  auto tx = db.begin();  // SQLite lets a read-only connection begin; the write fails
  if (tx) {
    auto in_tx = tx->execute("CREATE TABLE u (k)");
    ASSERT_FALSE(in_tx);
    EXPECT_TRUE(in_tx.error().is(errc::io)) << in_tx.error();
  }
}

TEST_F(SqliteTest, UnopenableFilesAreIoErrors) {
  auto missing_dir = sqlite::database::open(file("no/such/dir/x.db"));
  ASSERT_FALSE(missing_dir);
  EXPECT_TRUE(missing_dir.error().is(errc::io)) << missing_dir.error();
  EXPECT_NE(missing_dir.error().message.find("no/such/dir/x.db"), std::string::npos)
      << missing_dir.error();

  auto no_create = sqlite::database::open(file("absent.db"), {.create = false});
  ASSERT_FALSE(no_create);
  EXPECT_TRUE(no_create.error().is(errc::io)) << no_create.error();

  std::ofstream(file("garbage.db")) << std::string(4096, 'g');
  auto garbage = sqlite::database::open(file("garbage.db"));
  ASSERT_FALSE(garbage);
  // Not a database: a damaged file, never retried as transient I/O (issue 10).
  EXPECT_TRUE(garbage.error().is(errc::corrupt)) << garbage.error();
  EXPECT_NE(garbage.error().message.find("not a database"), std::string::npos) << garbage.error();
}

}  // namespace
