// detail: the state behind jetsource::sqlite::database (the sqlite3 handle and the statement
// cache) and the mapping of SQLite result codes to jetsource errors.
#pragma once

#include <jetsource/result.hpp>

#include <sqlite3.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace jetsource::sqlite::detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

struct database_state {
  sqlite3* db = nullptr;
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
/// invalid_argument, FULL/IOERR/READONLY/CANTOPEN/PERM/NOTADB/CORRUPT/... -> io.
error sqlite_error(sqlite3* db, int rc, std::string_view what, std::string_view sql = {},
                   bool name_file = true);

}  // namespace jetsource::sqlite::detail
