// Damaged projection databases: the check a projector runs at start (PRAGMA quick_check) and
// the error that says the file needs a rebuild. Corruption is never retried as transient.
#pragma once

#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

#include <filesystem>

namespace jetsource::detail {

/// errc::corrupt: "rebuild needed: <file> is damaged (<cause>)".
error rebuild_needed(const std::filesystem::path& file, const error& cause);

/// True for an error that says the database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB).
inline bool is_corrupt(const error& e) noexcept {
  return e.code == errc::corrupt;
}

/// PRAGMA quick_check over the whole file (measured: docs/operations.md). errc::corrupt (as
/// rebuild_needed) when it finds damage; other errors as they come.
result<void> check_integrity(sqlite::database& db, const std::filesystem::path& file);

}  // namespace jetsource::detail
