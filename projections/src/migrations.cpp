// jetsource::migrations: the registry of embedded migrations and the runner.
#include <jetsource/migrations.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>

namespace jetsource::migrations {

namespace {

struct embedded_file {
  std::string_view name;
  std::string_view bytes;
};

struct registry {
  std::mutex mutex;
  std::map<std::string, std::vector<embedded_file>, std::less<>> databases;
};

registry& the_registry() {
  static registry r;
  return r;
}

// "0001_x.sql" for messages, even for hand-made migrations with an empty name.
std::string label(const migration& m) {
  return m.name.empty() ? fmt::format("{:04}", m.number) : m.name;
}

constexpr std::string_view create_table =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " migration_set TEXT NOT NULL DEFAULT '',"  // whose: "jetsource", or the read model's
    " version INTEGER NOT NULL,"                // NNNN of the file
    " name TEXT NOT NULL,"                      // the file name
    " checksum TEXT NOT NULL,"                  // migrations::checksum of the file's bytes
    " applied_at TEXT NOT NULL,"                // UTC, ISO 8601
    " PRIMARY KEY (migration_set, version))";

}  // namespace

namespace detail {
void register_embedded(const char* database, const char* file_name, const unsigned char* bytes,
                       std::size_t size) noexcept {
  registry& r = the_registry();
  std::lock_guard lock(r.mutex);
  r.databases[database].push_back(
      {file_name, std::string_view(reinterpret_cast<const char*>(bytes), size)});
}
}  // namespace detail

std::string checksum(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return fmt::format("fnv1a64:{:016x}", hash);
}

result<migration> make(std::string_view file_name, std::string sql) {
  const auto digits = file_name.find_first_not_of("0123456789");
  const bool well_formed = digits != 0 && digits != std::string_view::npos &&
                           file_name[digits] == '_' && file_name.size() > digits + 1 + 4 &&
                           file_name.ends_with(".sql") && digits <= 9;
  if (!well_formed)
    return make_error(errc::invalid_argument,
                      "migration file name \"{}\" is not NNNN_description.sql", file_name);
  int number = 0;
  for (char c : file_name.substr(0, digits)) number = number * 10 + (c - '0');
  std::string sum = checksum(sql);
  return migration{number, std::string(file_name), std::move(sql), std::move(sum)};
}

result<std::vector<migration>> embedded(std::string_view database) {
  std::vector<embedded_file> files;
  {
    registry& r = the_registry();
    std::lock_guard lock(r.mutex);
    auto it = r.databases.find(database);
    if (it == r.databases.end())
      return make_error(errc::not_found, "no migrations embedded for database \"{}\"", database);
    files = it->second;
  }
  std::vector<migration> list;
  list.reserve(files.size());
  for (const auto& f : files) {
    JETSOURCE_TRY(m, make(f.name, std::string(f.bytes)));
    list.push_back(std::move(m));
  }
  std::stable_sort(list.begin(), list.end(),
                   [](const migration& a, const migration& b) { return a.number < b.number; });
  return list;
}

std::vector<std::string> embedded_databases() {
  registry& r = the_registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, files] : r.databases) names.push_back(name);
  return names;
}

namespace {

// The list to apply, in order, with the checksums of its files.
struct plan {
  std::vector<const migration*> ordered;
  std::vector<std::string> sums;
};

// The list: 1..N, no gaps, no duplicates (in any order).
result<plan> plan_of(const std::vector<migration>& list) {
  plan out;
  auto& ordered = out.ordered;
  for (const auto& m : list) ordered.push_back(&m);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const migration* a, const migration* b) { return a->number < b->number; });
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    const migration& m = *ordered[i];
    if (i > 0 && ordered[i - 1]->number == m.number)
      return make_error(errc::invalid_argument, "duplicate migration number {:04}: {} and {}",
                        m.number, label(*ordered[i - 1]), label(m));
    if (m.number != static_cast<int>(i) + 1)
      return make_error(errc::invalid_argument,
                        "migration {:04} is missing: migrations are numbered 1, 2, 3, ... without "
                        "gaps, and {} comes {}",
                        i + 1, label(m), i == 0 ? "first" : "after " + label(*ordered[i - 1]));
  }
  for (const migration* m : ordered) out.sums.push_back(checksum(m->sql));
  return out;
}

// Checks one applied row against the list: success when it matches, an error when it does not.
result<void> check_applied(const sqlite::database& db, const plan& pl, std::int64_t version,
                           const std::string& name, const std::string& sum) {
  if (version < 1 || version > static_cast<std::int64_t>(pl.ordered.size()))
    return make_error(errc::invalid_argument,
                      "database {} has migration {} ({}) that this program does not have: it "
                      "was migrated by a newer program",
                      db.path(), version, name);
  const auto i = static_cast<std::size_t>(version - 1);
  if (sum != pl.sums[i])
    return make_error(errc::invalid_argument,
                      "migration {} was changed after it was applied to {}: checksum {} in the "
                      "database, {} in this program (restore the file; change the schema with "
                      "a new migration)",
                      label(*pl.ordered[i]), db.path(), sum, pl.sums[i]);
  return success();
}

// The versions of `set` applied to the database, each checked against the list.
result<std::set<std::int64_t>> applied_versions(sqlite::database& db, const plan& pl,
                                                std::string_view set) {
  JETSOURCE_TRY(
      rows,
      db.query("SELECT version, name, checksum FROM schema_migrations WHERE migration_set = ?1",
               set));
  std::set<std::int64_t> applied;
  for (const auto& row : rows) {
    const auto version = row.get<std::int64_t>(0);
    JETSOURCE_TRY(check_applied(db, pl, version, row.get<std::string>(1), row.get<std::string>(2)));
    applied.insert(version);
  }
  return applied;
}

// Runs migration i and records it, in one transaction. False: another process applied it first.
result<bool> apply_one(sqlite::database& db, const plan& pl, std::size_t i, std::string_view set) {
  const migration& m = *pl.ordered[i];
  auto failed = [&](const error& e) {
    return error{e.code, fmt::format("migration {}: {}", label(m), e.message)};
  };
  auto tx = db.begin();
  if (!tx) return failed(tx.error());
  // Another process may have applied it since the rows above were read.
  auto again = tx->query_one(
      "SELECT name, checksum FROM schema_migrations "
      "WHERE migration_set = ?1 AND version = ?2",
      set, m.number);
  if (!again) return failed(again.error());
  if (*again) {
    JETSOURCE_TRY(check_applied(db, pl, m.number, (*again)->get<std::string>(0),
                                (*again)->get<std::string>(1)));
    return false;
  }
  if (auto r = tx->execute_script(m.sql); !r) return failed(r.error());
  if (!db.in_transaction())
    return failed(error{errc::invalid_argument,
                        "the script ended the transaction (no BEGIN/COMMIT in migrations)"});
  if (auto r = tx->execute("INSERT INTO schema_migrations (migration_set, version, name, checksum, "
                           "applied_at) "
                           "VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                           set, m.number, label(m), pl.sums[i]);
      !r)
    return failed(r.error());
  if (auto r = tx->commit(); !r) return failed(r.error());
  return true;
}

}  // namespace

result<std::vector<int>> apply(sqlite::database& db, const std::vector<migration>& list,
                               std::string_view set) {
  JETSOURCE_TRY(pl, plan_of(list));
  JETSOURCE_TRY(db.execute(create_table));
  JETSOURCE_TRY(applied, applied_versions(db, pl, set));
  std::vector<int> done;
  for (std::size_t i = 0; i < pl.ordered.size(); ++i) {
    if (applied.contains(pl.ordered[i]->number)) continue;
    JETSOURCE_TRY(ran, apply_one(db, pl, i, set));
    if (ran) done.push_back(pl.ordered[i]->number);
  }
  return done;
}

}  // namespace jetsource::migrations
