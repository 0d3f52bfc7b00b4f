// SQLite for read models: a connection, cached prepared statements, transactions and savepoints
// (<sqlite3.h> stays private).
//
// Thread-safety: a database (and its statements and transactions) is used by one thread at a
// time; open one database per thread that writes or reads concurrently.
//
// clang-format off
//   JETSOURCE_TRY(db, jetsource::sqlite::database::open("orders.db"));
//   JETSOURCE_TRY(tx, db.begin());
//   JETSOURCE_TRY(tx.execute("UPDATE order_summary SET status = 'paid' WHERE order_id = ?1", id));
//   JETSOURCE_TRY(tx.commit());
// clang-format on
#pragma once

#include <jetsource/detail/sqlite_value.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace jetsource::sqlite {

/// PRAGMA synchronous: what a commit waits for. `normal` in WAL mode is durable against a process
/// crash and loses at most the last transactions on a power cut; `full` survives a power cut too.
enum class synchronous { off, normal, full };

/// How a database is opened. Zero means "SQLite's default" for the numeric settings.
struct options {
  bool wal = true;  ///< journal_mode=WAL (ignored for :memory:)
  sqlite::synchronous synchronous = synchronous::normal;
  int cache_size_kib = 0;            ///< page cache per connection, in KiB
  int page_size = 0;                 ///< bytes; only takes effect on a new file
  int wal_autocheckpoint_pages = 0;  ///< checkpoint when the WAL has this many pages
  /// Run those checkpoints on a thread with a connection of its own, off the committing thread
  /// (its fsyncs no longer delay commits); the committer checkpoints by itself only once the
  /// WAL reaches 4 x wal_autocheckpoint_pages (1000 when 0). WAL files only.
  bool background_checkpoint = false;
  std::chrono::milliseconds busy_timeout{5000};  ///< how long a locked database is waited for
  bool read_only = false;                        ///< open read-only (never creates the file)
  bool create = true;                            ///< create the file when missing
  bool foreign_keys = true;                      ///< PRAGMA foreign_keys
};

/// True when `e` came from a locked database (SQLITE_BUSY / SQLITE_LOCKED): a transient failure
/// worth retrying with backoff (errc::busy; the message starts "database is busy: ").
bool is_busy(const error& e) noexcept;

/// A blob argument to bind (the bytes must outlive the call that binds them).
struct blob {
  const void* data = nullptr;
  std::size_t size = 0;
};

class database;
class transaction;
class savepoint;

class statement;

namespace detail {
struct database_state;
// A cached statement comes back reset but still bound (execute, query_one and query bind every
// parameter anyway); prepare_unbound is what `prepare` hands out: reset and unbound.
result<statement> prepare(database_state* db, std::string_view sql);
result<statement> prepare_unbound(database_state* db, std::string_view sql);
std::int64_t changes(database_state* db) noexcept;
}  // namespace detail

/// A result row, copied out of SQLite (columns 0..size()-1). get<T>(i) converts like SQLite's
/// column functions do (NULL reads as 0 / "" / an empty optional; numbers read as text are
/// formatted).
class row {
 public:
  row() = default;
  explicit row(std::vector<value> values) : values_(std::move(values)) {}

  std::size_t size() const noexcept { return values_.size(); }
  bool is_null(std::size_t i) const noexcept {
    return std::holds_alternative<std::nullptr_t>((*this)[i]);
  }
  /// Column i; an index past the end is a bug and terminates.
  const value& operator[](std::size_t i) const noexcept {
    if (i >= values_.size()) detail::bad_column(i, values_.size());
    return values_[i];
  }
  const std::vector<value>& values() const noexcept { return values_; }

  /// Column i as T: std::int64_t, any other integral type, bool, double, std::string,
  /// std::vector<std::byte>, or std::optional of one of those (empty on NULL).
  template <class T>
  T get(std::size_t i) const {
    return detail::as<T>((*this)[i]);
  }

 private:
  std::vector<value> values_;
};

/// A prepared statement, borrowed from the database's cache (keyed by SQL text) and handed
/// back, reset, when destroyed (`prepare` hands it out unbound). It must not outlive its
/// database.
class statement {
 public:
  statement(statement&&) noexcept;
  statement& operator=(statement&&) noexcept;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement();

  /// Binds parameter `index` (1-based, ?1..?N). Text and blobs are copied (but see
  /// bind_all_borrowed).
  template <class T>
  result<void> bind(int index, const T& v) {
    return checked(bind_code(index, v), index);
  }

  /// bind() without copying text and blobs: SQLite reads them where they are, so they must
  /// outlive the statement's next use (as with bind_all_borrowed).
  template <class T>
  result<void> bind_borrowed(int index, const T& v) {
    borrow_ = true;
    const int rc = bind_code(index, v);
    borrow_ = false;
    return rc == 0 ? success() : checked(rc, index);
  }

  /// Binds args to ?1..?N in order.
  template <class... Args>
  result<void> bind_all(const Args&... args) {
    // Fewer values than parameters: the rest are NULL, never a value of an earlier use.
    if (static_cast<int>(sizeof...(Args)) < parameter_count()) clear_bindings();
    // SQLite's codes until one fails, and only then an error (a result per bind cost more than
    // the binds themselves: issue 17 §3).
    int index = 0;
    int rc = 0;
    (void)(((rc = bind_code(++index, args)) == 0) && ...);
    return rc == 0 ? success() : checked(rc, index);
  }

  /// The same without copying text and blobs: SQLite reads them where they are, so they must
  /// outlive the statement's next use (nothing reads them once it is reset or destroyed).
  /// execute(), query_one() and query() bind so: their arguments outlive the call.
  template <class... Args>
  result<void> bind_all_borrowed(const Args&... args) {
    borrow_ = true;
    auto r = bind_all(args...);
    borrow_ = false;
    return r;
  }

  /// Runs one step: true when a row is ready to read, false when the statement is done.
  result<bool> step();
  /// Runs to completion, ignoring rows (for INSERT/UPDATE/DELETE/DDL).
  result<void> run();
  /// Resets to run again; bindings are kept.
  void reset() noexcept;
  /// Clears all bindings to NULL.
  void clear_bindings() noexcept;

  int column_count() const noexcept;
  std::string_view column_name(int i) const noexcept;
  bool column_is_null(int i) const noexcept;
  std::int64_t column_int64(int i) const noexcept;
  double column_double(int i) const noexcept;
  /// Valid until the next step, reset or destruction.
  std::string_view column_text(int i) const noexcept;
  /// Column i of the current row as a value, and the whole current row.
  value column_value(int i) const;
  sqlite::row current_row() const;
  /// Column i of the current row as T (same conversions as row::get).
  template <class T>
  T column(int i) const {
    return detail::as<T>(column_value(i));
  }

  std::string_view sql() const noexcept;

 private:
  friend result<statement> detail::prepare(detail::database_state*, std::string_view);
  statement(detail::database_state* db, void* stmt, void* slot) noexcept
      : db_(db), stmt_(stmt), slot_(slot) {}
  // The binds as SQLite's result code (0: bound), or above_int64 for an unsigned value SQLite
  // cannot hold; checked() makes the error of a code.
  static constexpr int above_int64 = -1;
  int bind_code(int index, std::int64_t v) noexcept;
  int bind_code(int index, double v) noexcept;
  int bind_code(int index, std::string_view v) noexcept;
  int bind_code(int index, blob v) noexcept;
  int bind_code(int index, std::nullptr_t) noexcept;
  int bind_code(int index, const char* v) noexcept { return bind_code(index, std::string_view(v)); }
  int bind_code(int index, const std::string& v) noexcept {
    return bind_code(index, std::string_view(v));
  }
  template <class T>
  requires std::integral<T>
  int bind_code(int index, T v) noexcept {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (v > static_cast<T>(std::numeric_limits<std::int64_t>::max())) return above_int64;
    }
    return bind_code(index, static_cast<std::int64_t>(v));
  }
  template <class T>
  requires std::floating_point<T>
  int bind_code(int index, T v) noexcept { return bind_code(index, static_cast<double>(v)); }
  template <class T>
  int bind_code(int index, const std::optional<T>& v) noexcept {
    if (!v) return bind_code(index, nullptr);
    return bind_code(index, *v);
  }
  result<void> checked(int code, int index) const;
  int parameter_count() const noexcept;

  detail::database_state* db_ = nullptr;
  void* stmt_ = nullptr;  // sqlite3_stmt
  void* slot_ = nullptr;  // the cache entry it goes back to; null: finalized when done
  bool borrow_ = false;   // bind_all_borrowed: text and blobs bound without a copy
};

namespace detail {
template <class... Args>
result<void> execute(database_state* db, std::string_view sql, const Args&... args) {
  JETSOURCE_TRY(st, prepare(db, sql));
  JETSOURCE_TRY(st.bind_all_borrowed(args...));
  return st.run();
}
template <class... Args>
result<std::optional<row>> query_one(database_state* db, std::string_view sql,
                                     const Args&... args) {
  JETSOURCE_TRY(st, prepare(db, sql));
  JETSOURCE_TRY(st.bind_all_borrowed(args...));
  JETSOURCE_TRY(has_row, st.step());
  if (!has_row) return std::optional<row>{};
  return std::optional<row>{st.current_row()};
}
template <class... Args>
result<std::vector<row>> query(database_state* db, std::string_view sql, const Args&... args) {
  JETSOURCE_TRY(st, prepare(db, sql));
  JETSOURCE_TRY(st.bind_all_borrowed(args...));
  std::vector<row> rows;
  for (;;) {
    JETSOURCE_TRY(has_row, st.step());
    if (!has_row) break;
    rows.push_back(st.current_row());
  }
  return rows;
}
result<void> execute_script(database_state* db, std::string_view sql);
}  // namespace detail

/// A connection to one SQLite database file (or ":memory:"). Move-only; closes when destroyed.
class database {
 public:
  /// Opens (and by default creates) the file and applies the options. Fails with errc::io when
  /// the file cannot be opened, errc::corrupt when it is not a database.
  static result<database> open(std::string_view path, const options& opts = {});

  database(database&&) noexcept;
  database& operator=(database&&) noexcept;
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  ~database();

  /// BEGIN IMMEDIATE: takes the write lock now (busy -> is_busy() error after busy_timeout).
  result<transaction> begin();

  /// A prepared statement for `sql` (one statement), from the cache when it was used before.
  result<statement> prepare(std::string_view sql) {
    return detail::prepare_unbound(state_.get(), sql);
  }

  /// Runs one statement with args bound to ?1..?N (autocommit, or inside the open transaction).
  template <class... Args>
  result<void> execute(std::string_view sql, const Args&... args) {
    return detail::execute(state_.get(), sql, args...);
  }
  /// The first row of a query, or an empty optional when there is none.
  template <class... Args>
  result<std::optional<row>> query_one(std::string_view sql, const Args&... args) {
    return detail::query_one(state_.get(), sql, args...);
  }
  /// All rows of a query.
  template <class... Args>
  result<std::vector<row>> query(std::string_view sql, const Args&... args) {
    return detail::query(state_.get(), sql, args...);
  }
  /// Runs a script of several statements without arguments (not cached). An error names the
  /// statement that failed.
  result<void> execute_script(std::string_view sql) {
    return detail::execute_script(state_.get(), sql);
  }

  /// Rows changed by the last INSERT/UPDATE/DELETE; rowid of the last INSERT.
  std::int64_t changes() const noexcept;
  std::int64_t last_insert_rowid() const noexcept;
  /// True while a transaction is open on this connection.
  bool in_transaction() const noexcept;
  const std::string& path() const noexcept;
  /// Prepared statements kept for reuse.
  std::size_t cached_statements() const noexcept;

 private:
  explicit database(std::unique_ptr<detail::database_state> state) noexcept;
  std::unique_ptr<detail::database_state> state_;
};

/// A write transaction (BEGIN IMMEDIATE), from database::begin(). Rolls back when destroyed
/// unless commit() ran. Move-only; must not outlive its database.
class transaction {
 public:
  transaction(transaction&&) noexcept;
  transaction& operator=(transaction&&) noexcept;
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  ~transaction();

  /// COMMIT. On failure the transaction is rolled back (nothing of it is kept).
  result<void> commit();
  /// ROLLBACK now (the destructor does the same).
  result<void> rollback();
  /// True until commit() or rollback() ran.
  bool active() const noexcept { return db_ != nullptr; }

  template <class... Args>
  result<void> execute(std::string_view sql, const Args&... args) {
    return detail::execute(db_, sql, args...);
  }
  template <class... Args>
  result<std::optional<row>> query_one(std::string_view sql, const Args&... args) {
    return detail::query_one(db_, sql, args...);
  }
  template <class... Args>
  result<std::vector<row>> query(std::string_view sql, const Args&... args) {
    return detail::query(db_, sql, args...);
  }
  result<statement> prepare(std::string_view sql) { return detail::prepare_unbound(db_, sql); }
  result<void> execute_script(std::string_view sql) { return detail::execute_script(db_, sql); }
  /// Rows changed by the last INSERT/UPDATE/DELETE.
  std::int64_t changes() const noexcept { return detail::changes(db_); }

 private:
  friend class database;
  friend class savepoint;
  explicit transaction(detail::database_state* db) noexcept : db_(db) {}
  detail::database_state* db_ = nullptr;
};

/// A savepoint in an open transaction (SAVEPOINT): a part of it that can be undone alone, as
/// SQLiteCpp's Savepoint. Rolled back (ROLLBACK TO, then RELEASE) when destroyed unless release()
/// or rollback() ran; the transaction goes on either way. Move-only; must not outlive the
/// transaction. Savepoints nest (last opened, first finished).
///
///   JETSOURCE_TRY(sp, sqlite::savepoint::open(tx, "one_message"));
///   if (auto r = apply(tx); !r) return sp.rollback();   // undo this part only
///   JETSOURCE_TRY(sp.release());                         // keep it in the transaction
class savepoint {
 public:
  /// SAVEPOINT `name` (letters, digits and '_'; errc::invalid_argument otherwise) in `tx`.
  static result<savepoint> open(transaction& tx, std::string_view name);

  savepoint(savepoint&&) noexcept;
  savepoint& operator=(savepoint&&) noexcept;
  savepoint(const savepoint&) = delete;
  savepoint& operator=(const savepoint&) = delete;
  ~savepoint();

  /// RELEASE: what was done since it was opened stays, as part of the transaction.
  result<void> release();
  /// ROLLBACK TO, then RELEASE: what was done since it was opened is undone.
  result<void> rollback();
  /// True until release() or rollback() ran.
  bool active() const noexcept { return db_ != nullptr; }

 private:
  savepoint(detail::database_state* db, std::string name) noexcept
      : db_(db), name_(std::move(name)) {}
  detail::database_state* db_ = nullptr;
  std::string name_;
};

}  // namespace jetsource::sqlite
