// detail: one embedded nats-server per JetStream store, shared by every process that opens it
// (an flock on <dir>/owner.lock, the server's URL in <dir>/url, take-over when the owner leaves).
#pragma once

#include <jetsource/runtime.hpp>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace jetsource::detail {

/// This process's part in a store's one server: the owner's lock, or a joiner's stand-by that
/// takes the server over (same store, same port) when the process serving it leaves.
///
/// Thread-safety: created and destroyed by one thread. An owner has no thread: lock_fd_ is
/// set once and closed by the destructor. A joiner's stand-by thread owns lock_fd_ and
/// taken_over_ until the destructor has joined it; stopping_ is guarded by mutex_ (the only
/// lock).
class embedded_store_membership {
 public:
  /// The owner: holds `lock_fd` (flock'ed; also held by its server) until destroyed.
  static std::shared_ptr<embedded_store_membership> owner(std::filesystem::path dir, int lock_fd);
  /// A joiner of the server on `port`: starts the stand-by thread.
  static std::shared_ptr<embedded_store_membership> joiner(std::filesystem::path dir,
                                                           std::uint16_t port);

  embedded_store_membership(const embedded_store_membership&) = delete;
  embedded_store_membership& operator=(const embedded_store_membership&) = delete;
  /// Stops the stand-by thread (and the server it took over), then closes the lock.
  ~embedded_store_membership();

 private:
  embedded_store_membership(std::filesystem::path dir, int lock_fd, std::uint16_t port);
  void stand_by();
  bool try_take_over();  // false: a start failed (back off)
  bool wait_stopping(std::chrono::milliseconds d);

  const std::filesystem::path dir_;
  const std::uint16_t port_;  // the URL this process joined: a take-over must keep it
  int lock_fd_ = -1;
  std::optional<embedded_server> taken_over_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread stand_by_;
};

/// runtime::open without URLs: owns the store at `dir` (starting its server) or joins the
/// server that serves it, waiting up to `wait` for an owner that is still starting its server.
/// errc::server_binary when the server cannot start, errc::unreachable when the owner's server
/// never answers.
result<runtime> open_embedded_store(connection_options options, const std::filesystem::path& dir,
                                    std::chrono::milliseconds wait);

}  // namespace jetsource::detail
