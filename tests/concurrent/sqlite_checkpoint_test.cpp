// Background checkpoints (sqlite::options::background_checkpoint; also run under ThreadSanitizer):
// the checkpoint thread copies the WAL into the database file without the writer asking, and the
// WAL stays bounded while commits keep coming.
#include <jetsource/sqlite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
namespace sqlite = jetsource::sqlite;
using namespace std::chrono_literals;

class background_checkpoint_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetsource-ckpt-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  sqlite::database open() {
    sqlite::options o;
    o.page_size = 1024;
    o.wal_autocheckpoint_pages = 100;
    o.background_checkpoint = true;
    auto db = sqlite::database::open((dir_ / "ckpt.db").string(), o);
    EXPECT_TRUE(db) << db.error();
    if (!db) std::abort();
    return std::move(db).value();
  }
  std::uintmax_t size(const char* suffix) const {
    std::error_code ec;
    auto n = fs::file_size(dir_ / (std::string("ckpt.db") + suffix), ec);
    return ec ? 0 : n;
  }
  // One transaction writing `rows` rows of 300 bytes (about one page each, in a 1 KiB page).
  static void write(sqlite::database& db, int first, int rows) {
    auto tx = db.begin();
    ASSERT_TRUE(tx) << tx.error();
    for (int i = first; i < first + rows; ++i)
      ASSERT_TRUE(tx->execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", i % 5000,
                              std::string(300, static_cast<char>('a' + i % 26))));
    ASSERT_TRUE(tx->commit());
  }
  fs::path dir_;
};

TEST_F(background_checkpoint_test, CopiesTheWalIntoTheDatabaseWithoutTheWriter) {
  auto db = open();
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"));
  const auto before = size("");
  // About 250 pages of WAL in all: past the checkpoint threshold (100), short of the point where
  // the writer would checkpoint by itself (400). Only the checkpoint thread can copy them.
  for (int i = 0; i < 40; ++i) write(db, i * 10, 10);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (size("") < before + 60 * 1024 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_GE(size(""), before + 60 * 1024) << "the database file did not receive the WAL's pages";
  auto n = db.query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(n && *n);
  EXPECT_EQ((*n)->get<int>(0), 400);
}

TEST_F(background_checkpoint_test, TheWalStaysBoundedUnderSteadyCommits) {
  auto db = open();
  ASSERT_TRUE(db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"));
  for (int i = 0; i < 3000; ++i) write(db, i * 7, 7);  // ~18,000 pages of WAL written in all
  // The WAL starts over once checkpoints catch up: its file stays a fraction of what went
  // through it (without checkpoints it would hold all ~18,000 pages). How far it grows before
  // starting over depends on how busy the machine is (sanitizers, parallel tests).
  EXPECT_LT(size("-wal"), 6000u * (1024 + 24)) << "the WAL kept growing";
  auto n = db.query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(n && *n);
  EXPECT_EQ((*n)->get<int>(0), 5000);
}

}  // namespace
