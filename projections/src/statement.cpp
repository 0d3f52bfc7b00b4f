// jetsource::sqlite::statement: binding, stepping, reading columns and rows; value conversions.
#include <jetsource/sqlite.hpp>

#include "sqlite_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace jetsource::sqlite {

namespace detail {

std::int64_t to_int64(const value& v) noexcept {
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) {
    if (std::isnan(*d)) return 0;
    if (*d >= 9.2233720368547758e18) return std::numeric_limits<std::int64_t>::max();
    if (*d <= -9.2233720368547758e18) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(*d);
  }
  if (auto* s = std::get_if<std::string>(&v)) {
    std::int64_t out = 0;
    auto first = s->data() + std::min(s->find_first_not_of(" \t"), s->size());
    std::from_chars(first, s->data() + s->size(), out);
    return out;
  }
  return 0;
}

double to_double(const value& v) noexcept {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (auto* s = std::get_if<std::string>(&v)) {
    double out = 0;
    auto first = s->data() + std::min(s->find_first_not_of(" \t"), s->size());
    std::from_chars(first, s->data() + s->size(), out);
    return out;
  }
  return 0;
}

std::string to_text(const value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  if (auto* b = std::get_if<std::vector<std::byte>>(&v))
    return std::string(reinterpret_cast<const char*>(b->data()), b->size());
  return {};
}

void bad_column(std::size_t i, std::size_t size) noexcept {
  fmt::print(stderr, "jetsource::sqlite: column {} read from a row of {} columns\n", i, size);
  std::abort();
}

std::vector<std::byte> to_blob(const value& v) {
  if (auto* b = std::get_if<std::vector<std::byte>>(&v)) return *b;
  if (std::holds_alternative<std::nullptr_t>(v)) return {};
  std::string text = to_text(v);
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

}  // namespace detail

namespace {
sqlite3_stmt* raw(void* p) noexcept {
  return static_cast<sqlite3_stmt*>(p);
}
}  // namespace

statement::statement(statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      slot_(std::exchange(other.slot_, nullptr)),
      borrow_(std::exchange(other.borrow_, false)) {}

statement& statement::operator=(statement&& other) noexcept {
  if (this != &other) {
    statement old(std::move(*this));  // handed back when this scope ends
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    slot_ = std::exchange(other.slot_, nullptr);
  }
  return *this;
}

statement::~statement() {
  if (stmt_ == nullptr) return;
  if (slot_ != nullptr && db_ != nullptr)
    db_->give_back(raw(stmt_), static_cast<std::vector<sqlite3_stmt*>*>(slot_));
  else
    sqlite3_finalize(raw(stmt_));
}

int statement::bind_code(int index, std::int64_t v) noexcept {
  return sqlite3_bind_int64(raw(stmt_), index, v);
}
int statement::bind_code(int index, double v) noexcept {
  return sqlite3_bind_double(raw(stmt_), index, v);
}
int statement::bind_code(int index, std::string_view v) noexcept {
  return sqlite3_bind_text64(raw(stmt_), index, v.data(), v.size(),
                             borrow_ ? SQLITE_STATIC : SQLITE_TRANSIENT, SQLITE_UTF8);
}
int statement::bind_code(int index, blob v) noexcept {
  if (v.data == nullptr) return sqlite3_bind_zeroblob(raw(stmt_), index, 0);
  return sqlite3_bind_blob64(raw(stmt_), index, v.data, v.size,
                             borrow_ ? SQLITE_STATIC : SQLITE_TRANSIENT);
}
int statement::bind_code(int index, std::nullptr_t) noexcept {
  return sqlite3_bind_null(raw(stmt_), index);
}

result<void> statement::checked(int code, int index) const {
  if (code == SQLITE_OK) return success();
  if (code == above_int64)
    return make_error(errc::invalid_argument,
                      "sqlite: bind ?{}: unsigned value above the int64 range; sql: {}", index,
                      sql());
  return detail::sqlite_error(sqlite3_db_handle(raw(stmt_)), code, fmt::format("bind ?{}", index),
                              sqlite3_sql(raw(stmt_)));
}

int statement::parameter_count() const noexcept {
  return sqlite3_bind_parameter_count(raw(stmt_));
}

result<bool> statement::step() {
  int rc = sqlite3_step(raw(stmt_));
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  error e = detail::sqlite_error(sqlite3_db_handle(raw(stmt_)), rc, "step", sql());
  sqlite3_reset(raw(stmt_));
  return e;
}

result<void> statement::run() {
  for (;;) {
    JETSOURCE_TRY(has_row, step());
    if (!has_row) return success();
  }
}

void statement::reset() noexcept {
  sqlite3_reset(raw(stmt_));
}
void statement::clear_bindings() noexcept {
  sqlite3_clear_bindings(raw(stmt_));
}

int statement::column_count() const noexcept {
  return sqlite3_column_count(raw(stmt_));
}
std::string_view statement::column_name(int i) const noexcept {
  const char* name = sqlite3_column_name(raw(stmt_), i);
  return name != nullptr ? std::string_view(name) : std::string_view{};
}
bool statement::column_is_null(int i) const noexcept {
  return sqlite3_column_type(raw(stmt_), i) == SQLITE_NULL;
}
std::int64_t statement::column_int64(int i) const noexcept {
  return sqlite3_column_int64(raw(stmt_), i);
}
double statement::column_double(int i) const noexcept {
  return sqlite3_column_double(raw(stmt_), i);
}
std::string_view statement::column_text(int i) const noexcept {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw(stmt_), i));
  if (text == nullptr) return {};
  return std::string_view(text, static_cast<std::size_t>(sqlite3_column_bytes(raw(stmt_), i)));
}

value statement::column_value(int i) const {
  switch (sqlite3_column_type(raw(stmt_), i)) {
    case SQLITE_INTEGER:
      return sqlite3_column_int64(raw(stmt_), i);
    case SQLITE_FLOAT:
      return sqlite3_column_double(raw(stmt_), i);
    case SQLITE_TEXT:
      return std::string(column_text(i));
    case SQLITE_BLOB: {
      const void* data = sqlite3_column_blob(raw(stmt_), i);
      std::vector<std::byte> bytes(static_cast<std::size_t>(sqlite3_column_bytes(raw(stmt_), i)));
      if (!bytes.empty()) std::memcpy(bytes.data(), data, bytes.size());
      return bytes;
    }
    default:
      return nullptr;
  }
}

row statement::current_row() const {
  std::vector<value> values;
  const int n = column_count();
  values.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) values.push_back(column_value(i));
  return row(std::move(values));
}

std::string_view statement::sql() const noexcept {
  const char* text = sqlite3_sql(raw(stmt_));
  return text != nullptr ? std::string_view(text) : std::string_view{};
}

}  // namespace jetsource::sqlite
