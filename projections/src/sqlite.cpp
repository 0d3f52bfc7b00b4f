// jetsource::sqlite: connection, statement cache, transactions, and SQLite error mapping.
#include <jetsource/sqlite.hpp>

#include "sqlite_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace jetsource::sqlite {

namespace detail {

database_state::~database_state() {
  background.reset();  // its connection closes first: the writer's close checkpoints last
  for (auto& [sql, list] : cache)
    for (sqlite3_stmt* stmt : list) sqlite3_finalize(stmt);
  cache.clear();
  // Statements still borrowed at this point are a misuse (they outlive the database);
  // sqlite3_close_v2 defers the close until they are finalized instead of failing.
  if (db != nullptr) sqlite3_close_v2(db);
}

result<std::unique_ptr<checkpointer>> checkpointer::start(const std::string& path, int pages,
                                                          const char* synchronous) {
  std::unique_ptr<checkpointer> c(new checkpointer);
  c->pages_ = pages;
  int rc = sqlite3_open_v2(path.c_str(), &c->db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, nullptr);
  // A checkpoint syncs (or not) by its own connection's setting: the writer's.
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(c->db_, fmt::format("PRAGMA synchronous={}", synchronous).c_str(), nullptr,
                      nullptr, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error(c->db_, rc, fmt::format("open {} for checkpoints", path));
  c->thread_ = std::thread([p = c.get()] { p->run(); });
  return c;
}

checkpointer::~checkpointer() {
  {
    std::lock_guard lk(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close_v2(db_);
}

int checkpointer::on_commit(void* self, sqlite3* writer, const char* schema, int wal_pages) {
  auto* c = static_cast<checkpointer*>(self);
  if (wal_pages >= 4 * c->pages_) {
    sqlite3_wal_checkpoint_v2(writer, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (wal_pages >= c->pages_) {
    {
      std::lock_guard lk(c->mutex_);
      c->due_ = true;
    }
    c->wake_.notify_one();
  }
  return SQLITE_OK;
}

void checkpointer::run() {
  std::unique_lock lk(mutex_);
  for (;;) {
    wake_.wait(lk, [&] { return due_ || stopping_; });
    if (stopping_) return;
    due_ = false;
    lk.unlock();
    // Commits made during a pass leave frames behind; a few more (shorter) passes usually
    // catch up, and the next write then starts the WAL over. Errors (e.g. BUSY: the writer is
    // checkpointing itself) wait for the next wake-up.
    for (int pass = 0; pass < 4; ++pass) {
      int in_log = 0, done = 0;
      if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &in_log, &done) !=
              SQLITE_OK ||
          done >= in_log)
        break;
    }
    lk.lock();
  }
}

void database_state::give_back(sqlite3_stmt* stmt, std::vector<sqlite3_stmt*>* slot) noexcept {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (idle >= max_idle) {
    sqlite3_finalize(stmt);
    return;
  }
  try {
    slot->push_back(stmt);
    ++idle;
  } catch (...) {  // out of memory: just do not keep it
    sqlite3_finalize(stmt);
  }
}

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

result<statement> prepare(database_state* db, std::string_view sql) {
  if (db == nullptr)
    return make_error(errc::invalid_argument, "sqlite: use of a moved-from database");
  auto it = db->cache.find(sql);
  if (it != db->cache.end() && !it->second.empty()) {
    sqlite3_stmt* stmt = it->second.back();
    it->second.pop_back();
    --db->idle;
    return statement(db, stmt, &it->second);
  }
  if (sql.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    return make_error(errc::invalid_argument, "sqlite: statement too long ({} bytes)", sql.size());
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db->db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return sqlite_error(db->db, rc, "prepare", sql);
  }
  if (stmt == nullptr)
    return make_error(errc::invalid_argument, "sqlite: no statement in \"{}\"", sql);
  std::string_view rest(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail));
  if (rest.find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    sqlite3_finalize(stmt);
    return make_error(errc::invalid_argument,
                      "sqlite: one statement expected (use execute_script for several); sql: {}",
                      sql);
  }
  // Kept for reuse when its text is the key it will be looked up with.
  std::vector<sqlite3_stmt*>* slot = nullptr;
  if (std::string_view(sqlite3_sql(stmt)) == sql) {
    if (it == db->cache.end())
      it = db->cache.emplace(std::string(sql), std::vector<sqlite3_stmt*>{}).first;
    slot = &it->second;
  }
  return statement(db, stmt, slot);
}

result<void> execute_script(database_state* db, std::string_view sql) {
  if (db == nullptr)
    return make_error(errc::invalid_argument, "sqlite: use of a moved-from database");
  const char* begin = sql.data();
  const char* end = sql.data() + sql.size();
  while (begin < end) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(db->db, begin, static_cast<int>(end - begin), &stmt, &tail);
    std::string_view text(begin, static_cast<std::size_t>(tail != nullptr ? tail - begin : 0));
    auto trimmed = [](std::string_view s) {
      auto first = s.find_first_not_of(" \t\r\n");
      if (first == std::string_view::npos) return std::string_view{};
      return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
    };
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return sqlite_error(db->db, rc, "prepare", trimmed(text));
    }
    if (stmt == nullptr) break;  // only whitespace or comments left
    do {
      rc = sqlite3_step(stmt);
    } while (rc == SQLITE_ROW);
    if (rc != SQLITE_DONE) {
      error e = sqlite_error(db->db, rc, "step", trimmed(text));
      sqlite3_finalize(stmt);
      return e;
    }
    sqlite3_finalize(stmt);
    begin = tail;
  }
  return success();
}

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

std::int64_t changes(database_state* db) noexcept {
  return db != nullptr ? sqlite3_changes64(db->db) : 0;
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

bool is_busy(const error& e) noexcept {
  return e.code == errc::busy;
}

// --- statement ---------------------------------------------------------------------------------

statement::statement(statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      slot_(std::exchange(other.slot_, nullptr)) {}

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

namespace {
result<void> bind_result(sqlite3_stmt* stmt, int rc, int index) {
  if (rc == SQLITE_OK) return success();
  return detail::sqlite_error(sqlite3_db_handle(stmt), rc, fmt::format("bind ?{}", index),
                              sqlite3_sql(stmt));
}
}  // namespace

result<void> statement::bind(int index, std::int64_t v) {
  return bind_result(raw(stmt_), sqlite3_bind_int64(raw(stmt_), index, v), index);
}
result<void> statement::bind(int index, double v) {
  return bind_result(raw(stmt_), sqlite3_bind_double(raw(stmt_), index, v), index);
}
result<void> statement::bind(int index, std::string_view v) {
  return bind_result(
      raw(stmt_),
      sqlite3_bind_text64(raw(stmt_), index, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
      index);
}
result<void> statement::bind(int index, blob v) {
  if (v.data == nullptr)
    return bind_result(raw(stmt_), sqlite3_bind_zeroblob(raw(stmt_), index, 0), index);
  return bind_result(
      raw(stmt_), sqlite3_bind_blob64(raw(stmt_), index, v.data, v.size, SQLITE_TRANSIENT), index);
}
result<void> statement::bind(int index, std::nullptr_t) {
  return bind_result(raw(stmt_), sqlite3_bind_null(raw(stmt_), index), index);
}

result<void> statement::out_of_range(int index) const {
  return make_error(errc::invalid_argument,
                    "sqlite: bind ?{}: unsigned value above the int64 range; sql: {}", index,
                    sql());
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

// --- database ----------------------------------------------------------------------------------

database::database(std::unique_ptr<detail::database_state> state) noexcept
    : state_(std::move(state)) {}
database::database(database&&) noexcept = default;
database& database::operator=(database&&) noexcept = default;
database::~database() = default;

result<database> database::open(std::string_view path, const options& o) {
  auto state = std::make_unique<detail::database_state>();
  state->path = std::string(path);
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  if (o.read_only)
    flags |= SQLITE_OPEN_READONLY;
  else
    flags |= SQLITE_OPEN_READWRITE | (o.create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(state->path.c_str(), &state->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    error e = detail::sqlite_error(state->db, rc, fmt::format("open {}", path), {}, false);
    return e;
  }
  sqlite3_extended_result_codes(state->db, 1);
  sqlite3_busy_timeout(state->db, static_cast<int>(std::clamp<std::int64_t>(
                                      o.busy_timeout.count(), 0, std::numeric_limits<int>::max())));

  std::string pragmas;
  if (o.page_size > 0 && !o.read_only) pragmas += fmt::format("PRAGMA page_size={};", o.page_size);
  if (o.wal && !o.read_only) pragmas += "PRAGMA journal_mode=WAL;";
  static constexpr const char* sync_names[] = {"OFF", "NORMAL", "FULL"};
  pragmas += fmt::format("PRAGMA synchronous={};", sync_names[static_cast<int>(o.synchronous)]);
  if (o.cache_size_kib > 0) pragmas += fmt::format("PRAGMA cache_size=-{};", o.cache_size_kib);
  const char* file = sqlite3_db_filename(state->db, "main");
  const bool background =
      o.background_checkpoint && o.wal && !o.read_only && file != nullptr && *file != '\0';
  if (o.wal_autocheckpoint_pages > 0 && !background)
    pragmas += fmt::format("PRAGMA wal_autocheckpoint={};", o.wal_autocheckpoint_pages);
  pragmas += fmt::format("PRAGMA foreign_keys={};", o.foreign_keys ? "ON" : "OFF");
  // Reads the header: a file that is not a database fails here, not at first use.
  pragmas += "SELECT count(*) FROM sqlite_schema;";
  if (auto r = detail::execute_script(state.get(), pragmas); !r) {
    return r.error();  // names the file and the PRAGMA
  }
  if (background) {
    auto c = detail::checkpointer::start(
        state->path, o.wal_autocheckpoint_pages > 0 ? o.wal_autocheckpoint_pages : 1000,
        sync_names[static_cast<int>(o.synchronous)]);
    if (!c) return std::move(c).error();
    state->background = std::move(c).value();
    sqlite3_wal_hook(state->db, &detail::checkpointer::on_commit, state->background.get());
  }
  return database(std::move(state));
}

result<transaction> database::begin() {
  if (!state_) return make_error(errc::invalid_argument, "sqlite: use of a moved-from database");
  JETSOURCE_TRY(execute("BEGIN IMMEDIATE"));
  return transaction(state_.get());
}

std::int64_t database::changes() const noexcept {
  return detail::changes(state_.get());
}
std::int64_t database::last_insert_rowid() const noexcept {
  return state_ ? sqlite3_last_insert_rowid(state_->db) : 0;
}
bool database::in_transaction() const noexcept {
  return state_ && sqlite3_get_autocommit(state_->db) == 0;
}
const std::string& database::path() const noexcept {
  static const std::string none;
  return state_ ? state_->path : none;
}
std::size_t database::cached_statements() const noexcept {
  return state_ ? state_->idle : 0;
}

// --- transaction -------------------------------------------------------------------------------

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
