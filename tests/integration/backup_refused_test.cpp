// Backup files refused (jetsource::verify_backup, restore): a flipped byte, a truncated file, a
// file that is not a backup, two commits sharing a commit id: each refused with a clear error
// before anything is written (the target stream is not even created); a backup never overwrites
// a file.
#include "backup_fixture.hpp"

#include <fstream>
#include <thread>

namespace jetsource::test {
namespace {

TEST_F(backup_test, ACommitIdUsedTwiceIsFoundAndTheRestoreRefusedBeforeWriting) {
  // A stream with a 1 s duplicate window: the same commit id lands again once the window passed.
  auto store = open_store(
      {.stream = "SHORT", .subject_prefix = "short", .duplicate_window = std::chrono::seconds{1}});
  commit c{.aggregate_type = "T",
           .aggregate_id = "a-1",
           .version = 1,
           .commit_id = "same",
           .event_types = "E",
           .body = "{}"};
  auto first = store.append(c);
  ASSERT_TRUE(first) << first.error();
  c.aggregate_id = "a-2";
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {  // until the server has forgotten the id (the window, plus its purge timer)
    auto r = store.append(c);
    // Still remembered: the store says the id was used on another subject.
    ASSERT_TRUE(r || r.error().is(errc::invalid_argument)) << r.error();
    if (r && r->status == append_status::appended) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(backup(*conn_, "SHORT", file("short.jsbk")));
  auto info = verify_backup(file("short.jsbk"));
  ASSERT_TRUE(info) << info.error();
  ASSERT_TRUE(info->repeated_msg_id);
  EXPECT_EQ(*info->repeated_msg_id, "'same' at sequences 1 and 2");

  second_server target;
  ASSERT_TRUE(target.conn);
  auto r = restore(*target.conn, file("short.jsbk"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  EXPECT_NE(r.error().message.find("'same' at sequences 1 and 2"), std::string::npos) << r.error();
  EXPECT_FALSE(stream_exists(*target.conn, "SHORT"));
}

TEST_F(backup_test, ABackupNeverOverwritesAFileAndNamesAMissingStream) {
  std::ofstream(file("exists.jsbk")) << "keep me";
  seed(1);
  auto r = backup(*conn_, "ORDERS", file("exists.jsbk"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_argument)) << r.error();
  std::ifstream in(file("exists.jsbk"));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "keep me");
  auto missing = backup(*conn_, "NOPE", file("nope.jsbk"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found)) << missing.error();
  EXPECT_FALSE(std::filesystem::exists(file("nope.jsbk")));
  EXPECT_FALSE(std::filesystem::exists(file("nope.jsbk.partial")));
}

// A damaged file: refused with errc::corrupt before anything is written (the target stream is
// not even created).
class damaged_backup_test : public backup_test {
 protected:
  std::string bytes_of(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  void write(const std::filesystem::path& p, const std::string& b) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
  }
  // Restores `damaged` into a fresh server: must fail with errc::corrupt mentioning `what`, and
  // leave the server without the stream.
  void expect_refused(const std::filesystem::path& damaged, std::string_view what) {
    auto v = verify_backup(damaged);
    ASSERT_FALSE(v);
    EXPECT_TRUE(v.error().is(errc::corrupt)) << v.error();
    second_server target;
    ASSERT_TRUE(target.conn);
    auto r = restore(*target.conn, damaged);
    ASSERT_FALSE(r) << "a damaged file was restored";
    EXPECT_TRUE(r.error().is(errc::corrupt)) << r.error();
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error();
    EXPECT_NE(r.error().message.find("nothing written"), std::string::npos) << r.error();
    EXPECT_FALSE(stream_exists(*target.conn, "ORDERS")) << "the target stream was created";
  }
};

TEST_F(damaged_backup_test, AFlippedByteInACommitsBodyIsRefusedByTheChecksum) {
  seed(10);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  // A byte inside a commit's JSON body, well inside the file: its structure stays valid, only
  // the checksum can tell.
  auto at = b.find("\"sku\":\"sku-", b.size() / 2);
  ASSERT_NE(at, std::string::npos);
  b[at + 7] = 'X';
  write(file("flipped.jsbk"), b);
  expect_refused(file("flipped.jsbk"), "checksum mismatch");
}

TEST_F(damaged_backup_test, ATruncatedFileIsRefused) {
  seed(10);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  write(file("cut-end.jsbk"), b.substr(0, b.size() - 10));  // in the checksum
  expect_refused(file("cut-end.jsbk"), "truncated");
  write(file("cut-middle.jsbk"), b.substr(0, b.size() / 2));  // inside a record
  expect_refused(file("cut-middle.jsbk"), "truncated");
  write(file("empty.jsbk"), "");
  expect_refused(file("empty.jsbk"), "truncated");
}

TEST_F(damaged_backup_test, AFileThatIsNotABackupIsRefusedByItsMagic) {
  seed(2);
  ASSERT_TRUE(backup(*conn_, "ORDERS", file("full.jsbk")));
  auto b = bytes_of(file("full.jsbk"));
  b[0] = 'X';
  write(file("magic.jsbk"), b);
  expect_refused(file("magic.jsbk"), "does not start with JSBACKUP");
  write(file("text.jsbk"), "hello, this is not a backup at all\n");
  expect_refused(file("text.jsbk"), "JSBACKUP");
  auto missing = verify_backup(file("missing.jsbk"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found)) << missing.error();
}

}  // namespace
}  // namespace jetsource::test
