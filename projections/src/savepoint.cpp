// jetsource::sqlite::savepoint: SAVEPOINT / RELEASE / ROLLBACK TO inside a transaction (RAII).
#include <jetsource/sqlite.hpp>

#include <fmt/format.h>

#include <utility>

namespace jetsource::sqlite {

result<savepoint> savepoint::open(transaction& tx, std::string_view name) {
  if (tx.db_ == nullptr)
    return make_error(errc::invalid_argument, "sqlite: savepoint in a finished transaction");
  bool valid = !name.empty();
  for (char c : name)
    valid = valid && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_');
  if (!valid)
    return make_error(errc::invalid_argument,
                      "sqlite: savepoint name \"{}\": use letters, digits and '_'", name);
  JETSOURCE_TRY(detail::execute(tx.db_, fmt::format("SAVEPOINT {}", name)));
  return savepoint(tx.db_, std::string(name));
}

savepoint::savepoint(savepoint&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), name_(std::move(other.name_)) {}

savepoint& savepoint::operator=(savepoint&& other) noexcept {
  if (this != &other) {
    (void)rollback();
    db_ = std::exchange(other.db_, nullptr);
    name_ = std::move(other.name_);
  }
  return *this;
}

savepoint::~savepoint() {
  (void)rollback();
}

result<void> savepoint::release() {
  detail::database_state* db = std::exchange(db_, nullptr);
  if (db == nullptr) return make_error(errc::invalid_argument, "sqlite: savepoint already ended");
  return detail::execute(db, fmt::format("RELEASE {}", name_));
}

result<void> savepoint::rollback() {
  detail::database_state* db = std::exchange(db_, nullptr);
  if (db == nullptr) return success();
  // SQLite may have rolled the whole transaction back by itself (SQLITE_FULL, SQLITE_IOERR, ...):
  // then there is no savepoint left to go back to, and ROLLBACK TO reports it.
  JETSOURCE_TRY(detail::execute(db, fmt::format("ROLLBACK TO {}", name_)));
  return detail::execute(db, fmt::format("RELEASE {}", name_));
}

}  // namespace jetsource::sqlite
