// Issue 16 §3: under commits that never pause (a rebuild, a catch-up), the background
// checkpointer never copies the last commits of the WAL (they arrive while it runs), so the WAL
// starts over only when the writer checkpoints by itself, at 4 x wal_autocheckpoint_pages. That
// last resort used to fail (SQLITE_BUSY) whenever a pass of the checkpointer ran, and the WAL
// grew without bound (here: to 4,900-11,700 frames for a threshold of 1,000). The writer now
// waits for the pass and copies the rest: the WAL never grows past 4 x the threshold (and
// usually starts over well before, when the writer copies the last few frames itself).
#include <jetsource/sqlite.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>

namespace {

namespace fs = std::filesystem;
namespace sqlite = jetsource::sqlite;

constexpr int threshold = 1000;         // wal_autocheckpoint_pages
constexpr std::uintmax_t frame = 1048;  // a 1 KiB page + the 24-byte frame header

class WalBoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jetsource-walbound-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::uintmax_t wal_size() const {
    std::error_code ec;
    auto n = fs::file_size(dir_ / "wal.db-wal", ec);
    return ec ? 0 : n;
  }
  fs::path dir_;
};

TEST_F(WalBoundTest, TheWalNeverGrowsPastTheLastResortUnderCommitsThatNeverPause) {
  sqlite::options o;
  o.page_size = 1024;
  o.synchronous = sqlite::synchronous::normal;  // checkpoints fsync, as in a projection
  o.wal_autocheckpoint_pages = threshold;
  o.background_checkpoint = true;
  auto db = sqlite::database::open((dir_ / "wal.db").string(), o);
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(db->execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"));
  // ~8 pages per transaction (20 rows over 5,000 keys), back to back: ~24 x the threshold.
  std::uintmax_t largest = 0;
  for (int i = 0; i < 3000; ++i) {
    auto tx = db->begin();
    ASSERT_TRUE(tx) << tx.error();
    for (int r = 0; r < 20; ++r)
      ASSERT_TRUE(tx->execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", (i * 20 + r) % 5000,
                              std::string(300, static_cast<char>('a' + i % 26))));
    ASSERT_TRUE(tx->commit());
    largest = std::max(largest, wal_size());
  }
  // One transaction (~25 frames) may go past 4 x the threshold before the writer's next begin().
  EXPECT_LE(largest, (4 * threshold + 64) * frame)
      << "the WAL grew to " << largest / frame << " frames";
  auto n = db->query_one("SELECT count(*) FROM t");
  ASSERT_TRUE(n && *n);
  EXPECT_EQ((*n)->get<int>(0), 5000);
}

}  // namespace
