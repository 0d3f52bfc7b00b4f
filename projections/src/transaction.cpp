// jetsource::sqlite::transaction: BEGIN IMMEDIATE ... COMMIT, rolled back unless committed (RAII).
#include <jetsource/sqlite.hpp>

#include "sqlite_state.hpp"

#include <utility>

namespace jetsource::sqlite {

transaction::transaction(transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

transaction& transaction::operator=(transaction&& other) noexcept {
  if (this != &other) {
    (void)rollback();
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

transaction::~transaction() {
  (void)rollback();
}

result<void> transaction::commit() {
  if (db_ == nullptr)
    return make_error(errc::invalid_argument, "sqlite: commit of a finished transaction");
  auto r = detail::execute(db_, "COMMIT");
  if (!r) {
    (void)rollback();
    return r;
  }
  db_ = nullptr;
  return success();
}

result<void> transaction::rollback() {
  detail::database_state* db = std::exchange(db_, nullptr);
  if (db == nullptr) return success();
  // SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR, ...).
  if (sqlite3_get_autocommit(db->db) != 0) return success();
  int rc = sqlite3_exec(db->db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return detail::sqlite_error(db->db, rc, "rollback", "ROLLBACK");
  return success();
}

}  // namespace jetsource::sqlite
