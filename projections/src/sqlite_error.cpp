// jetsource::sqlite: SQLite result codes mapped to jetsource errors (see sqlite_state.hpp).
#include <jetsource/sqlite.hpp>

#include "sqlite_state.hpp"

#include <fmt/format.h>

namespace jetsource::sqlite {

namespace detail {

namespace {

errc code_of(int rc) noexcept {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return errc::busy;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
    case SQLITE_AUTH:
      return errc::io;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return errc::corrupt;  // never transient: the file needs a rebuild
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      return errc::invalid_argument;
    default:
      return errc::internal;
  }
}

bool busy(int rc) noexcept {
  return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

}  // namespace

error sqlite_error(sqlite3* db, int rc, std::string_view what, std::string_view sql,
                   bool name_file) {
  std::string text =
      db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string where;
  if (db != nullptr && name_file) {
    const char* file = sqlite3_db_filename(db, "main");
    where = file != nullptr && *file != '\0' ? fmt::format(" on {}", file) : " on :memory:";
  }
  std::string message = fmt::format("{}{}{}: {} (sqlite code {})",
                                    busy(rc) ? "database is busy: " : "", what, where, text, rc);
  if (!sql.empty()) message += fmt::format("; sql: {}", sql);
  return error{code_of(rc), std::move(message), std::nullopt, rc};
}

}  // namespace detail

bool is_busy(const error& e) noexcept {
  return e.code == errc::busy;
}

}  // namespace jetsource::sqlite
