// detail: where a projection database lives on disk, across rebuilds (docs/adr/0008).
//
//   <db>            the configured path: the database itself until the first rebuild
//   <db>.current    pointer: the name of the file in use (replaced atomically by rename)
//   <db>.g<N>       generation N, built by a rebuild
//   <db>.lock       flock held by the live projector (one per database, any process)
//   <db>.rebuild.lock  flock held by a running rebuild
//   <db>.rebuilding    marker: the generation file a rebuild is building (resumable)
//   <db>.ready         marker: a caught-up generation waiting for the live projector to adopt
//   <db>.failed        why the live projector stopped applying (a damaged file, a stream created
//                      again): for status from other processes; removed by the next good start
//   <db>.consumer      this copy's durable consumer name (consumer_admin.hpp)
//   <db>.requests/     dead-letter retry/skip requests for the live projector from other
//                      processes: <token>.request, taken as <token>.taken, answered in
//                      <token>.answer (repair_requests.cpp)
#pragma once

#include <jetsource/result.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace jetsource::detail {

using path = std::filesystem::path;

inline path with_suffix(const path& db, std::string_view suffix) {
  return path(db.string() + std::string(suffix));
}

/// The file currently in use for `db`.
path current_file(const path& db);
/// Points `db` at `file` (atomically: write a temp file, rename it over <db>.current).
result<void> point_to(const path& db, const path& file);
/// The generation number of a file name (<db>.g<N> -> N; <db> -> 0).
int generation_of(const path& db, const path& file);

/// The contents of a marker file (a file name in the same directory), if present.
std::optional<path> read_marker(const path& marker);
result<void> write_marker(const path& marker, const path& file);

/// A small text file's first line (nullopt when missing or empty), and writing one atomically.
std::optional<std::string> read_text(const path& file);
result<void> write_text(const path& file, std::string_view text);

/// Deletes a database file and its -wal / -shm companions (errors ignored).
void remove_database_files(const path& file);

/// An exclusive flock on a file, held until destroyed.
class file_lock {
 public:
  /// errc::busy when another process (or another lock in this one) holds it for more than a
  /// moment (a probe by held() is waited out).
  static result<file_lock> try_acquire(const path& file);
  /// True when someone holds the lock on `file` now (a probe: takes and drops it at once when
  /// free; false when the file does not exist).
  static bool held(const path& file);
  file_lock(file_lock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  file_lock& operator=(file_lock&& o) noexcept;
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  ~file_lock();

 private:
  explicit file_lock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace jetsource::detail
