// detail: one embedded nats-server per JetStream store, shared by every process that opens it
// (<dir>/owner.lock held by the server, <dir>/users.lock shared by its users, <dir>/url).
#pragma once

#include <jetsource/runtime.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include <sys/types.h>

namespace jetsource::detail {

/// One runtime's use of a store's server: a shared flock on <dir>/users.lock while the runtime
/// lives. The last one out (the one that then gets the lock exclusively) stops the server.
///
/// Thread-safety: used by the thread that owns the runtime; no internal threads or locks.
class embedded_store_membership {
 public:
  /// Takes the shared lock, waiting until `deadline` for a last user that is still stopping
  /// the server.
  static result<std::shared_ptr<embedded_store_membership>> enter(
      std::filesystem::path dir, std::chrono::steady_clock::time_point deadline);

  embedded_store_membership(const embedded_store_membership&) = delete;
  embedded_store_membership& operator=(const embedded_store_membership&) = delete;
  /// Stops the server if leave() found this the last user (after the connection closed), then
  /// releases the lock.
  ~embedded_store_membership();

  /// The runtime is going away (its connection still open). The last user keeps `own` (the
  /// server this process started, stopped by its destructor) or stops the server it joined in
  /// the destructor; any other detaches `own`, which keeps serving the others.
  void leave(std::optional<embedded_server>& own);

 private:
  embedded_store_membership(std::filesystem::path dir, int users_fd)
      : dir_(std::move(dir)), users_fd_(users_fd) {}

  const std::filesystem::path dir_;
  int users_fd_ = -1;
  pid_t stop_pid_ = -1;  // a server this process did not start, to stop when the last one out
};

/// runtime::open without URLs: starts the store's server when none runs on `dir`, joins it
/// otherwise, waiting up to `wait` for one that is still starting (or stopping). Errors:
/// errc::server_binary when the server cannot start, errc::unreachable when the running
/// server never answers.
result<runtime> open_embedded_store(connection_options options, const std::filesystem::path& dir,
                                    std::chrono::milliseconds wait);

}  // namespace jetsource::detail
