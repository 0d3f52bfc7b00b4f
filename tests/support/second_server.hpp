// Test support: a second, empty nats-server (JetStream, its own temp store, a free loopback port)
// with a connection to it, e.g. the target of a restore. Stopped by PID when it goes away.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/server.hpp>

#include "nats_fixture.hpp"

#include <optional>

namespace jetsource::test {

struct second_server {
  temp_dir dir;
  std::optional<embedded_server> server;
  std::optional<connection> conn;

  second_server() {
    auto s = embedded_server::start({.data_dir = dir.path() / "nats"});
    EXPECT_TRUE(s) << s.error();
    if (!s) return;
    server.emplace(std::move(s).value());
    auto c = connection::connect({.urls = {server->url()}});
    EXPECT_TRUE(c) << c.error();
    if (c) conn.emplace(std::move(c).value());
  }
  ~second_server() {
    conn.reset();
    if (server) (void)server->stop();
  }
  second_server(const second_server&) = delete;
  second_server& operator=(const second_server&) = delete;
};

}  // namespace jetsource::test
