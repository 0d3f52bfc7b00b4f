// SQL migrations: `migrations/<database>/NNNN_description.sql`, compiled into the binary, applied
// in order, each in its own transaction, recorded with a checksum in `schema_migrations`.
//
// Thread-safety: embedded() may be called from any thread; apply() uses the database it is given
// (one thread at a time, like every sqlite::database). Several processes may apply at once.
//
// In CMake: jetsource_embed_migrations(order_projector migrations/orders orders); then:
// clang-format off
//   JETSOURCE_TRY(list, jetsource::migrations::embedded("orders"));
//   JETSOURCE_TRY(applied, jetsource::migrations::apply(db, list, "orders"));
// clang-format on
#pragma once

#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace jetsource::migrations {

/// One migration file.
struct migration {
  int number = 0;        ///< NNNN of the file name; 1, 2, 3, ... without gaps
  std::string name;      ///< the file name, e.g. "0001_projection_state.sql"
  std::string sql;       ///< the file's bytes: one or more statements, no BEGIN/COMMIT
  std::string checksum;  ///< checksum(sql), e.g. "fnv1a64:cbf29ce484222325"
};

/// "fnv1a64:" + the FNV-1a 64-bit hash of the bytes, as 16 lowercase hex digits.
std::string checksum(std::string_view bytes);

/// A migration from a file name `NNNN_description.sql` (number from the leading digits) and its
/// contents; errc::invalid_argument when the name does not have that form.
result<migration> make(std::string_view file_name, std::string sql);

/// The migrations compiled in for `database` (by jetsource_embed_migrations), ordered by
/// number; errc::not_found when none were embedded under that name. "jetsource" holds the
/// framework's own tables (projection state, dedup, dead letters).
result<std::vector<migration>> embedded(std::string_view database);

/// The names under which migrations were embedded, sorted.
std::vector<std::string> embedded_databases();

/// Brings `db` up to date: creates `schema_migrations` when missing, then applies every
/// migration not recorded there, in order, each in its own transaction together with its row
/// (set, version, name, checksum, applied_at). Returns the numbers applied now (empty when the
/// database was up to date). Stops, with nothing of the failing migration kept, on:
/// - a list that is not 1..N without gaps or duplicates (errc::invalid_argument);
/// - an applied migration whose checksum differs from the list's (errc::invalid_argument,
///   naming the file and both checksums), or one the list does not have (a newer binary ran);
/// - a migration that fails (its error, prefixed with the file name).
///
/// Several sets of migrations can live in one database, each numbered from 1: `set` names this
/// one (a projection database holds the "jetsource" set and the read model's own).
result<std::vector<int>> apply(sqlite::database& db, const std::vector<migration>& list,
                               std::string_view set = "");

namespace detail {
/// Called by the code jetsource_embed_migrations generates, during static initialisation.
void register_embedded(const char* database, const char* file_name, const unsigned char* bytes,
                       std::size_t size) noexcept;
}  // namespace detail

}  // namespace jetsource::migrations
