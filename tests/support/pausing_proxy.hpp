// A TCP proxy on loopback between one NATS client and a nats-server that can hold back what the
// server sends: the first time the client's bytes contain `trigger` (e.g. "PUB test.Account."),
// everything the server sends to the client waits `hold`, then flows on, late. Every byte is
// delivered, in order: the server stored the message, the client's wait for the ack timed out.
// A lost ack, made by real sockets.
//
// Threads: the acceptor thread owns the listening socket; each accepted connection gets two
// pump threads (one per direction), which own nothing but their copy loop. hold_until_ and
// armed_ are atomics; the destructor stops and joins every thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace jetsource::test {

class pausing_proxy {
 public:
  pausing_proxy(std::uint16_t server_port, std::string trigger, std::chrono::milliseconds hold)
      : server_port_(server_port), trigger_(std::move(trigger)), hold_(hold) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("pausing_proxy: cannot listen");
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  pausing_proxy(const pausing_proxy&) = delete;
  pausing_proxy& operator=(const pausing_proxy&) = delete;
  ~pausing_proxy() {
    stop_ = true;
    acceptor_.join();
    std::lock_guard lock(mutex_);
    for (auto& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listener_);
  }

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  /// True once the trigger was seen (and the server's bytes held).
  bool triggered() const { return !armed_; }
  /// Waits until the server's bytes flow again (the hold is over).
  void wait_released() const {
    while (clock::now().time_since_epoch().count() < hold_until_)
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }

 private:
  using clock = std::chrono::steady_clock;

  static bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 50) > 0;
  }

  void accept_loop() {
    while (!stop_) {
      if (!readable(listener_)) continue;
      int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      int server = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(server_port_);
      if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(client);
        if (server >= 0) ::close(server);
        continue;
      }
      std::lock_guard lock(mutex_);
      fds_.insert(fds_.end(), {client, server});
      pumps_.emplace_back([this, client, server] { pump(client, server, true); });
      pumps_.emplace_back([this, client, server] { pump(server, client, false); });
    }
  }

  // Copies `from` to `to` until either side closes or the proxy stops. The client's direction
  // watches for the trigger; the server's direction waits while a hold is on.
  void pump(int from, int to, bool from_client) {
    std::vector<char> buf(64 * 1024);
    while (!stop_) {
      if (!readable(from)) continue;
      ssize_t n = ::read(from, buf.data(), buf.size());
      if (n <= 0) break;
      if (from_client && armed_ &&
          std::string_view(buf.data(), static_cast<std::size_t>(n)).find(trigger_) !=
              std::string_view::npos) {
        hold_until_ = (clock::now() + hold_).time_since_epoch().count();
        armed_ = false;
      }
      if (!from_client)
        while (!stop_ && clock::now().time_since_epoch().count() < hold_until_)
          std::this_thread::sleep_for(std::chrono::milliseconds{5});
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(to, buf.data() + off, static_cast<std::size_t>(n - off));
        if (w <= 0) return;
        off += w;
      }
    }
    ::shutdown(to, SHUT_WR);
  }

  std::uint16_t server_port_;
  std::string trigger_;
  std::chrono::milliseconds hold_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> armed_{true};
  std::atomic<clock::rep> hold_until_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> pumps_;  // guarded by mutex_
  std::vector<int> fds_;            // guarded by mutex_
};

}  // namespace jetsource::test
