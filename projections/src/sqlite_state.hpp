// detail: the state behind jetsource::sqlite::database (the sqlite3 handle and the statement
// cache) and the mapping of SQLite result codes to jetsource errors.
#pragma once

#include <jetsource/result.hpp>

#include <sqlite3.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace jetsource::sqlite::detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// WAL checkpoints on a thread and a connection of their own (options::background_checkpoint).
// The writer's WAL hook wakes it once the WAL has `pages` pages; it runs PASSIVE checkpoints,
// which never block the writer.
//
// A PASSIVE checkpoint copies the WAL as it was when it began; the WAL starts over only once
// all of it is copied, at the writer's next transaction. Commits that pause now and then (a
// live projector) give the checkpointer that chance: nothing more happens. Under commits that
// never pause (a rebuild, a catch-up) the checkpointer never copies the last commits, so the
// writer finishes the job in begin(), before its next transaction:
// - past 2 x `pages`, when the checkpointer has copied all but `finish_frames` frames, the
//   writer copies the rest itself (if no pass of the checkpointer runs at that moment: it
//   never waits for one);
// - when the WAL reaches 4 x `pages` anyway (the last resort), the writer waits for the
//   checkpointer's pass to end and copies all the rest. The WAL never grows past that: before
//   this, the last resort's checkpoint failed (SQLITE_BUSY) whenever a pass ran, and the WAL
//   grew without bound (docs/performance.md, "Soak").
//
// Thread-safety: on_commit and before_write run on the writer's thread, run() on the
// checkpointer's. due_, stopping_, backfilled_, wal_pages_ and generation_ are guarded by
// mutex_; pass_mutex_ is held during every checkpoint of either connection (never together
// with mutex_).
class checkpointer {
 public:
  /// Opens a second connection to `path` (already in WAL mode) and starts the thread.
  static result<std::unique_ptr<checkpointer>> start(const std::string& path, int pages,
                                                     const char* synchronous);
  ~checkpointer();
  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  /// Installed with sqlite3_wal_hook on the writer: runs on the committing thread.
  static int on_commit(void* self, sqlite3* writer, const char* schema, int wal_pages);
  /// Called by the writer before it begins a transaction: the checkpoint on_commit asked it to
  /// run, if any.
  void before_write(sqlite3* writer);

 private:
  checkpointer() = default;
  void run();

  enum writer_task : int { none = 0, finish = 1, last_resort = 2 };

  sqlite3* db_ = nullptr;
  int pages_ = 0;
  int finish_frames_ = 0;  // the writer copies at most this many frames itself (but last resort)
  std::atomic<int> writer_due_{none};  // on_commit -> before_write, same thread
  std::mutex pass_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false, stopping_ = false;
  // Frames of the current WAL the checkpointer copied (0: none yet); the WAL's size after the
  // writer's last commit (smaller: it started over); generation_ counts the times it started
  // over, so that a pass that began before does not record what it saw.
  int backfilled_ = 0, wal_pages_ = 0;
  std::uint64_t generation_ = 0;
  std::thread thread_;
};

struct database_state {
  sqlite3* db = nullptr;
  std::unique_ptr<checkpointer> background;  // stopped before db is closed
  std::string path;
  // Idle prepared statements by SQL text (a free list per text; entries are never erased, so
  // a statement keeps a pointer to its list). A statement in use is out of its list, so the
  // same SQL running twice at once (a query inside a loop over another) gets a second one.
  std::unordered_map<std::string, std::vector<sqlite3_stmt*>, string_hash, std::equal_to<>> cache;
  std::size_t idle = 0;  // statements in all lists
  // The lists of the last few texts, by where the text was: a handler's SQL is usually a literal,
  // passed again at the same address, so most lookups compare one text instead of hashing it.
  // The text is compared too (the same address may hold other SQL by then).
  struct recent_text {
    const char* data = nullptr;
    const std::string* key = nullptr;  // the cache's key (nodes are never erased)
    std::vector<sqlite3_stmt*>* list = nullptr;
  };
  std::array<recent_text, 8> recent{};
  std::size_t recent_next = 0;
  /// The free list of `sql` when it is cached, else null.
  std::vector<sqlite3_stmt*>* cached_list(std::string_view sql);

  static constexpr std::size_t max_idle = 512;

  database_state() = default;
  database_state(const database_state&) = delete;
  database_state& operator=(const database_state&) = delete;
  ~database_state();

  /// Hands a statement back to its free list (reset, bindings cleared), or finalizes it.
  void give_back(sqlite3_stmt* stmt, std::vector<sqlite3_stmt*>* slot) noexcept;
};

/// Maps a SQLite result code to a jetsource error carrying sqlite3_errmsg, what was being done
/// and the SQL: BUSY/LOCKED -> busy "database is busy: ...", CONSTRAINT/ERROR/RANGE/MISMATCH ->
/// invalid_argument, FULL/IOERR/READONLY/CANTOPEN/PERM/... -> io, CORRUPT/NOTADB -> corrupt.
error sqlite_error(sqlite3* db, int rc, std::string_view what, std::string_view sql = {},
                   bool name_file = true);

}  // namespace jetsource::sqlite::detail
