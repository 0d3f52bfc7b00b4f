// jetsource::sqlite::database: opening (options, pragmas), background WAL checkpoints, and the
// statement cache (prepare, execute_script).
#include <jetsource/sqlite.hpp>

#include "sqlite_state.hpp"
#include "thread_name.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>

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
  c->finish_frames_ = std::max(1024, pages / 8);
  int rc = sqlite3_open_v2(path.c_str(), &c->db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, nullptr);
  // A checkpoint syncs (or not) by its own connection's setting: the writer's.
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(c->db_, fmt::format("PRAGMA synchronous={}", synchronous).c_str(), nullptr,
                      nullptr, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error(c->db_, rc, fmt::format("open {} for checkpoints", path));
  c->thread_ = std::thread([p = c.get()] {
    jetsource::detail::name_this_thread("js-checkpoint");
    p->run();
  });
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

int checkpointer::on_commit(void* self, sqlite3*, const char*, int wal_pages) {
  auto* c = static_cast<checkpointer*>(self);
  {
    std::lock_guard lk(c->mutex_);
    if (wal_pages < c->wal_pages_) {  // the WAL started over: what the checkpointer saw is old
      c->backfilled_ = 0;
      ++c->generation_;
    }
    c->wal_pages_ = wal_pages;
    if (wal_pages < c->pages_) return SQLITE_OK;
    if (wal_pages >= 4 * c->pages_) {
      c->writer_due_ = last_resort;
      return SQLITE_OK;
    }
    // Twice the threshold: the checkpointer alone did not get the WAL to start over (commits
    // never paused). When it left only the last commits, the writer copies them.
    if (wal_pages >= 2 * c->pages_ && c->backfilled_ > 0 &&
        wal_pages - c->backfilled_ <= c->finish_frames_) {
      c->writer_due_ = finish;
      return SQLITE_OK;
    }
    c->due_ = true;
  }
  c->wake_.notify_one();
  return SQLITE_OK;
}

void checkpointer::before_write(sqlite3* writer) {
  const int task = writer_due_.exchange(none);
  if (task == none) return;
  std::unique_lock pass(pass_mutex_, std::defer_lock);
  if (task == last_resort)
    pass.lock();  // wait for the checkpointer's pass: the WAL must not grow on
  else if (!pass.try_lock())
    return;  // a pass runs: the next commit asks again
  // Nothing else copies meanwhile, and no new commit comes: it copies all that is left, and
  // this transaction starts the WAL over. Errors (e.g. another process checkpointing) are left
  // to the next commit.
  sqlite3_wal_checkpoint_v2(writer, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

void checkpointer::run() {
  std::unique_lock lk(mutex_);
  bool left_to_writer = false;
  for (;;) {
    // The writer copies the last frames before its next transaction; when none comes soon (it
    // went idle), the checkpointer copies them after all.
    if (left_to_writer &&
        !wake_.wait_for(lk, std::chrono::milliseconds(50), [&] { return due_ || stopping_; }) &&
        wal_pages_ > backfilled_)
      due_ = true;
    left_to_writer = false;
    wake_.wait(lk, [&] { return due_ || stopping_; });
    if (stopping_) return;
    due_ = false;
    const auto generation = generation_;
    lk.unlock();
    int in_log = 0, done = 0, rc = SQLITE_OK;
    {
      std::lock_guard pass(pass_mutex_);
      rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &in_log, &done);
    }
    lk.lock();
    if (rc != SQLITE_OK || generation != generation_) continue;  // errors: the next wake-up
    backfilled_ = done;
    // Commits during the pass asked for another. Past twice the threshold, once they are few,
    // the writer copies them instead (another pass would only leave the newest behind again).
    if (wal_pages_ >= 2 * pages_ && wal_pages_ - done <= finish_frames_) {
      due_ = false;
      left_to_writer = wal_pages_ > done;
    }
  }
}

// Reset, not unbound: whoever takes it next binds every parameter (execute, query_one, query:
// bind_all unbinds first when given fewer values) or gets it unbound (prepare_unbound). Text
// bound without a copy is thus never read after its owner is gone.
void database_state::give_back(sqlite3_stmt* stmt, std::vector<sqlite3_stmt*>* slot) noexcept {
  sqlite3_reset(stmt);
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

std::vector<sqlite3_stmt*>* database_state::cached_list(std::string_view sql) {
  for (const auto& r : recent)
    if (r.data == sql.data() && r.key->size() == sql.size() && *r.key == sql) return r.list;
  auto it = cache.find(sql);
  if (it == cache.end()) return nullptr;
  recent[recent_next] = {sql.data(), &it->first, &it->second};
  recent_next = (recent_next + 1) % recent.size();
  return &it->second;
}

result<statement> prepare(database_state* db, std::string_view sql) {
  if (db == nullptr)
    return make_error(errc::invalid_argument, "sqlite: use of a moved-from database");
  auto* list = db->cached_list(sql);
  if (list != nullptr && !list->empty()) {
    sqlite3_stmt* stmt = list->back();
    list->pop_back();
    --db->idle;
    return statement(db, stmt, list);
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
  std::vector<sqlite3_stmt*>* slot = list;
  if (slot == nullptr && std::string_view(sqlite3_sql(stmt)) == sql)
    slot = &db->cache.emplace(std::string(sql), std::vector<sqlite3_stmt*>{}).first->second;
  return statement(db, stmt, slot);
}

result<statement> prepare_unbound(database_state* db, std::string_view sql) {
  auto st = prepare(db, sql);
  if (st) st->clear_bindings();
  return st;
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

std::int64_t changes(database_state* db) noexcept {
  return db != nullptr ? sqlite3_changes64(db->db) : 0;
}

}  // namespace detail

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
  if (state_->background) state_->background->before_write(state_->db);
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

}  // namespace jetsource::sqlite
