// Test support: a real nats-server (JetStream, temp store, free loopback port) per test,
// stopped by PID at teardown, also when the test fails. Also kills it if the test process dies.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/server.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

namespace jetsource::test {

/// A unique temporary directory, removed when the object goes away.
class temp_dir {
 public:
  temp_dir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("jetsource-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
             "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Fixture: server_ (running), conn_ (connected), helpers to open stores and restart the server.
class nats_test : public ::testing::Test {
 protected:
  void SetUp() override {
    start_server(0);
    connection_options o;
    o.urls = {server_->url()};
    o.max_reconnects = -1;
    o.reconnect_wait = std::chrono::milliseconds{50};
    auto c = connection::connect(o);
    ASSERT_TRUE(c) << c.error();
    conn_.emplace(std::move(c).value());
  }
  void TearDown() override {
    conn_.reset();
    if (server_) (void)server_->stop();
  }

  void start_server(std::uint16_t port) {
    embedded_server_options o;
    o.data_dir = dir_.path() / "nats";
    o.port = port;
    auto s = embedded_server::start(o);
    ASSERT_TRUE(s) << s.error();
    server_.emplace(std::move(s).value());
  }

  /// kill -9 the server, then start it again on the same port and store.
  void crash_and_restart_server() {
    auto port = server_->port();
    server_->kill_hard();
    server_.reset();
    start_server(port);
  }

  event_store open_store(store_options o = {}) {
    if (o.stream == "EVENTS") {
      o.stream = "TEST";
      o.subject_prefix = "test";
    }
    auto s = event_store::open(*conn_, o);
    EXPECT_TRUE(s) << s.error();
    if (!s) std::abort();
    return std::move(s).value();
  }

  temp_dir dir_;
  std::optional<embedded_server> server_;
  std::optional<connection> conn_;
};

}  // namespace jetsource::test
