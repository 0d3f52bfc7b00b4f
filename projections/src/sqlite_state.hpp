// detail: the state behind jetsource::sqlite::database (the sqlite3 handle and the statement
// cache) and the mapping of SQLite result codes to jetsource errors.
#pragma once

#include <jetsource/result.hpp>

#include <sqlite3.h>

#include <condition_variable>
#include <cstddef>
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
// which never block the writer, and repeats while commits keep arriving during one, so the
// WAL can start over from its beginning. The writer checkpoints by itself only when the WAL
// reaches 4 x `pages` (the checkpointer cannot keep up).
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

 private:
  checkpointer() = default;
  void run();

  sqlite3* db_ = nullptr;
  int pages_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false, stopping_ = false;
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
