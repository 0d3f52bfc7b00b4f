// jetsource::migrations: order, idempotence, checksum drift, failing migrations, the embedded
// jetsource tables (real SQLite files in a temp dir).
#include <jetsource/migrations.hpp>
#include <jetsource/sqlite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sqlite = jetsource::sqlite;
namespace migrations = jetsource::migrations;
using jetsource::errc;

migrations::migration m(std::string name, std::string sql) {
  auto r = migrations::make(name, std::move(sql));
  EXPECT_TRUE(r) << r.error();
  return std::move(r).value();
}

class MigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetsource-migrations-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    auto db = sqlite::database::open((dir_ / "read.db").string());
    ASSERT_TRUE(db) << db.error();
    db_.emplace(std::move(db).value());
  }
  void TearDown() override {
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> tables() {
    auto rows = db_->query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name");
    EXPECT_TRUE(rows) << rows.error();
    std::vector<std::string> names;
    for (const auto& row : *rows) names.push_back(row.get<std::string>(0));
    return names;
  }
  std::vector<std::int64_t> recorded() {
    auto rows = db_->query("SELECT version FROM schema_migrations ORDER BY version");
    EXPECT_TRUE(rows) << rows.error();
    std::vector<std::int64_t> versions;
    for (const auto& row : *rows) versions.push_back(row.get<std::int64_t>(0));
    return versions;
  }

  fs::path dir_;
  std::optional<sqlite::database> db_;
};

const std::vector<migrations::migration> orders = {
    m("0001_orders.sql", "CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL);"),
    m("0002_order_total.sql", "ALTER TABLE orders ADD COLUMN total_cents INTEGER;"),
    m("0003_order_index.sql",
      "CREATE INDEX orders_by_status ON orders (status);\n"
      "INSERT INTO orders VALUES ('seed', 'placed', 0);"),
};

TEST(MigrationTest, ChecksumIsFnv1a64OfTheBytes) {
  EXPECT_EQ(migrations::checksum(""), "fnv1a64:cbf29ce484222325");
  EXPECT_EQ(migrations::checksum("a"), "fnv1a64:af63dc4c8601ec8c");
  EXPECT_NE(migrations::checksum("x;\n"), migrations::checksum("x;\r\n"));
}

TEST(MigrationTest, MakeReadsTheNumberFromTheFileName) {
  auto r = migrations::make("0042_add_index.sql", "SELECT 1;");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->number, 42);
  EXPECT_EQ(r->name, "0042_add_index.sql");
  EXPECT_EQ(r->checksum, migrations::checksum("SELECT 1;"));
  for (const char* bad : {"add_index.sql", "0001.sql", "0001_x.txt", "_x.sql", "12345678901_x.sql",
                          "0001-x.sql", "0001_.sql"}) {
    SCOPED_TRACE(bad);
    auto e = migrations::make(bad, "");
    ASSERT_FALSE(e);
    EXPECT_TRUE(e.error().is(errc::invalid_argument)) << e.error();
  }
}

TEST_F(MigrationsTest, AppliesInNumberOrderAndRecordsEach) {
  // Given out of order: applied by number (0002 needs 0001's table).
  const std::vector<migrations::migration> shuffled = {orders[2], orders[0], orders[1]};
  auto applied = migrations::apply(*db_, shuffled);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(*applied, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(tables(), (std::vector<std::string>{"orders", "schema_migrations"}));
  EXPECT_EQ(recorded(), (std::vector<std::int64_t>{1, 2, 3}));

  auto row =
      db_->query_one("SELECT name, checksum, applied_at FROM schema_migrations WHERE version = 2");
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->get<std::string>(0), "0002_order_total.sql");
  EXPECT_EQ((*row)->get<std::string>(1), orders[1].checksum);
  EXPECT_EQ((*row)->get<std::string>(2).size(), std::string("2024-01-01T00:00:00.000Z").size());
}

TEST_F(MigrationsTest, SecondApplyAppliesNothing) {
  ASSERT_TRUE(migrations::apply(*db_, orders));
  auto again = migrations::apply(*db_, orders);
  ASSERT_TRUE(again) << again.error();
  EXPECT_TRUE(again->empty());
  // The seed row of 0003 was inserted once.
  EXPECT_EQ((*db_->query_one("SELECT count(*) FROM orders"))->get<int>(0), 1);

  // Also from another connection (a restarted process).
  auto other = sqlite::database::open((dir_ / "read.db").string());
  ASSERT_TRUE(other);
  auto third = migrations::apply(*other, orders);
  ASSERT_TRUE(third) << third.error();
  EXPECT_TRUE(third->empty());
}

TEST_F(MigrationsTest, AppliesOnlyTheNewOnes) {
  ASSERT_TRUE(migrations::apply(*db_, {orders[0], orders[1]}));
  auto applied = migrations::apply(*db_, orders);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(*applied, std::vector<int>{3});
  EXPECT_EQ(recorded(), (std::vector<std::int64_t>{1, 2, 3}));
}

TEST_F(MigrationsTest, ChangedAppliedMigrationStopsWithBothChecksums) {
  ASSERT_TRUE(migrations::apply(*db_, orders));
  auto changed = orders;
  changed[1] = m("0002_order_total.sql", "ALTER TABLE orders ADD COLUMN total INTEGER;");
  changed.push_back(m("0004_more.sql", "CREATE TABLE more (x);"));
  auto r = migrations::apply(*db_, changed);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  EXPECT_NE(r.error().message.find("0002_order_total.sql"), std::string::npos) << r.error();
  EXPECT_NE(r.error().message.find(orders[1].checksum), std::string::npos) << r.error();
  EXPECT_NE(r.error().message.find(changed[1].checksum), std::string::npos) << r.error();
  // Nothing after the refusal ran.
  EXPECT_EQ(recorded(), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(tables(), (std::vector<std::string>{"orders", "schema_migrations"}));
}

TEST_F(MigrationsTest, FailingMigrationRollsBackAndIsNotRecorded) {
  auto broken = orders;
  broken.push_back(m("0004_broken.sql",
                     "CREATE TABLE half_done (x);\n"
                     "INSERT INTO orders VALUES ('x', 'placed', 1);\n"
                     "INSERT INTO no_such_table VALUES (1);\n"));
  auto r = migrations::apply(*db_, broken);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  EXPECT_NE(r.error().message.find("0004_broken.sql"), std::string::npos) << r.error();
  EXPECT_NE(r.error().message.find("no such table: no_such_table"), std::string::npos) << r.error();
  // 0001-0003 were applied (each its own transaction); nothing of 0004 was kept.
  EXPECT_EQ(recorded(), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(tables(), (std::vector<std::string>{"orders", "schema_migrations"}));
  EXPECT_EQ((*db_->query_one("SELECT count(*) FROM orders"))->get<int>(0), 1);
  EXPECT_FALSE(db_->in_transaction());

  // Fixed, it applies.
  broken[3] = m("0004_broken.sql", "CREATE TABLE half_done (x);");
  auto fixed = migrations::apply(*db_, broken);
  ASSERT_TRUE(fixed) << fixed.error();
  EXPECT_EQ(*fixed, std::vector<int>{4});
}

TEST_F(MigrationsTest, GapsAndDuplicatesAreRefused) {
  auto gap = migrations::apply(*db_, {orders[0], orders[2]});
  ASSERT_FALSE(gap);
  EXPECT_TRUE(gap.error().is(errc::invalid_argument)) << gap.error();
  EXPECT_NE(gap.error().message.find("0002 is missing"), std::string::npos) << gap.error();

  auto no_first = migrations::apply(*db_, {orders[1]});
  ASSERT_FALSE(no_first);
  EXPECT_NE(no_first.error().message.find("0001 is missing"), std::string::npos)
      << no_first.error();

  auto dup = migrations::apply(*db_, {orders[0], orders[1], m("0002_other.sql", "SELECT 1;")});
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(errc::invalid_argument)) << dup.error();
  EXPECT_NE(dup.error().message.find("0002_other.sql"), std::string::npos) << dup.error();
  // Refused before touching the database.
  EXPECT_TRUE(tables().empty());
}

TEST_F(MigrationsTest, DatabaseMigratedByANewerProgramIsRefused) {
  ASSERT_TRUE(migrations::apply(*db_, orders));
  auto r = migrations::apply(*db_, {orders[0], orders[1]});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  EXPECT_NE(r.error().message.find("0003_order_index.sql"), std::string::npos) << r.error();
}

TEST_F(MigrationsTest, TransactionControlInAMigrationIsRefused) {
  auto r = migrations::apply(*db_, {m("0001_commits.sql", "CREATE TABLE a (x); COMMIT;")});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("0001_commits.sql"), std::string::npos) << r.error();
  EXPECT_FALSE(db_->in_transaction());
}

TEST_F(MigrationsTest, EmbeddedJetsourceMigrationsCreateTheFrameworkTables) {
  auto list = migrations::embedded("jetsource");
  ASSERT_TRUE(list) << list.error();
  ASSERT_FALSE(list->empty());
  EXPECT_EQ((*list)[0].number, 1);
  EXPECT_EQ((*list)[0].name, "0001_projection_state.sql");
  EXPECT_EQ((*list)[0].checksum, migrations::checksum((*list)[0].sql));
  EXPECT_NE((*list)[0].sql.find("CREATE TABLE applied_versions"), std::string::npos);

  auto applied = migrations::apply(*db_, *list);
  ASSERT_TRUE(applied) << applied.error();
  EXPECT_EQ(applied->size(), list->size());
  EXPECT_EQ(tables(), (std::vector<std::string>{"applied_versions", "dead_letters",
                                                "projection_state", "schema_migrations"}));
  auto sql = db_->query_one("SELECT sql FROM sqlite_schema WHERE name = 'applied_versions'");
  ASSERT_TRUE(sql && *sql);
  EXPECT_NE((*sql)->get<std::string>(0).find("WITHOUT ROWID"), std::string::npos);

  // The dedup row is an upsert keyed by aggregate: one row per aggregate, however many events.
  for (int version = 1; version <= 3; ++version) {
    auto r = db_->execute(
        "INSERT INTO applied_versions (aggregate_type, aggregate_id, version, sequence) "
        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (aggregate_type, aggregate_id) "
        "DO UPDATE SET version = excluded.version, sequence = excluded.sequence",
        "Order", "ord-1", version, 100 + version);
    ASSERT_TRUE(r) << r.error();
  }
  auto row = db_->query_one("SELECT count(*), max(version) FROM applied_versions");
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->get<int>(0), 1);
  EXPECT_EQ((*row)->get<int>(1), 3);

  auto again = migrations::apply(*db_, *list);
  ASSERT_TRUE(again) << again.error();
  EXPECT_TRUE(again->empty());

  const auto names = migrations::embedded_databases();
  EXPECT_NE(std::find(names.begin(), names.end(), "jetsource"), names.end());
  auto unknown = migrations::embedded("no-such-database");
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(errc::not_found)) << unknown.error();
}

TEST_F(MigrationsTest, ReadOnlyDatabaseIsAnIoError) {
  db_.reset();
  auto ro = sqlite::database::open((dir_ / "read.db").string(), {.read_only = true});
  ASSERT_TRUE(ro) << ro.error();
  auto r = migrations::apply(*ro, orders);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::io)) << r.error();
  EXPECT_NE(r.error().message.find("readonly"), std::string::npos) << r.error();
}

}  // namespace
