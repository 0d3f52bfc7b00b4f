// Test support: a nats-server (JetStream, temp store, free loopback port) started with a
// configuration file the test writes (TLS, authorization), stopped by PID when it goes away.
#pragma once

#include <jetsource/server.hpp>

#include "nats_fixture.hpp"

#include <fstream>
#include <optional>
#include <string>

namespace jetsource::test {

struct configured_server {
  temp_dir dir;
  std::optional<embedded_server> server;

  /// Writes `config` to <dir>/nats.conf and starts nats-server -c on it (a test failure, and no
  /// server, when it does not start).
  explicit configured_server(const std::string& config) {
    const auto file = dir.path() / "nats.conf";
    std::ofstream(file) << config;
    auto s = embedded_server::start(
        {.data_dir = dir.path() / "nats", .extra_args = {"-c", file.string()}});
    EXPECT_TRUE(s) << s.error() << "\nconfig:\n" << config;
    if (s) server.emplace(std::move(s).value());
  }
  ~configured_server() {
    if (server) (void)server->stop();
  }
  configured_server(const configured_server&) = delete;
  configured_server& operator=(const configured_server&) = delete;

  /// scheme://127.0.0.1:<port>
  std::string url(const std::string& scheme = "nats") const {
    return scheme + "://127.0.0.1:" + std::to_string(server ? server->port() : 0);
  }
  /// The server's log so far (for messages in failed assertions).
  std::string log() const {
    std::ifstream in(dir.path() / "nats" / "nats-server.log");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
};

}  // namespace jetsource::test
