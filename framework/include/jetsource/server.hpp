// An embedded nats-server: started as a child process with JetStream on a loopback port,
// stopped (by its PID) when the handle goes away, unless detached.
//
// Thread-safety: one owner; start and stop it from one thread (the one that started it should
// outlive it: by default the child is also told to die with that thread).
//
// clang-format off
//   auto server = jetsource::embedded_server::start({.data_dir = ".demo/nats"});
//   if (!server) { fmt::print(stderr, "{}\n", server.error()); return 1; }
//   auto conn = jetsource::connection::connect({.urls = {server->url()}});
// clang-format on
#pragma once

#include <jetsource/result.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace jetsource {

struct embedded_server_options {
  std::filesystem::path data_dir;  ///< JetStream store (persistent); created if missing
  std::string binary;              ///< nats-server to run; "" = from PATH, then /usr/sbin
  std::uint16_t port = 0;          ///< 0 = a free loopback port
  std::chrono::milliseconds start_timeout{10000};
  std::vector<std::string> extra_args;  ///< more nats-server flags (e.g. "--cluster", ...)
  bool log_to_file = true;              ///< the server's log goes to <data_dir>/nats-server.log
  /// A descriptor the server process keeps open (as its fd 3) for as long as it runs; -1: none.
  /// runtime::open passes the store's flock(2)ed owner.lock: the lock is held exactly as long
  /// as the server runs.
  int inherited_fd = -1;
  /// SIGKILL the server when the thread that started it dies. runtime::open turns it off: the
  /// store's server outlives its starter while other processes use it.
  bool die_with_parent = true;
};

/// A running nats-server child process.
class embedded_server {
 public:
  /// Starts the server and waits until it accepts clients. errc::server_binary when the binary
  /// is missing or exits during start-up (the error quotes the end of its log).
  static result<embedded_server> start(embedded_server_options options);

  embedded_server(embedded_server&& other) noexcept;
  embedded_server& operator=(embedded_server&& other) noexcept;
  embedded_server(const embedded_server&) = delete;
  embedded_server& operator=(const embedded_server&) = delete;
  ~embedded_server();  ///< stop()

  /// nats://127.0.0.1:<port>
  std::string url() const;
  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  const embedded_server_options& options() const noexcept { return options_; }

  /// Graceful stop (SIGTERM, then SIGKILL after `grace`); waits for the process.
  result<void> stop(std::chrono::milliseconds grace = std::chrono::milliseconds{5000});
  /// kill -9 and reap (for fault tests).
  void kill_hard();
  /// Whether the child is still running.
  bool running();
  /// Forgets the process without stopping it (it keeps running; whoever stops it later does so
  /// by its PID). The handle is then empty, as after stop().
  void detach() noexcept { pid_ = -1; }

 private:
  embedded_server() = default;
  embedded_server_options options_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace jetsource
