// The embedded nats-server launcher and the connection: start, readiness, clear errors for a
// missing or crashing binary, stop by PID, reconnect after a restart.
#include <jetsource/connection.hpp>
#include <jetsource/runtime.hpp>
#include <jetsource/server.hpp>

#include "nats_fixture.hpp"

#include <signal.h>

#include <fstream>

using jetsource::errc;
using jetsource::test::temp_dir;

namespace {

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

TEST(EmbeddedServerTest, StartsConnectsAndStopsByPid) {
  temp_dir dir;
  auto server = jetsource::embedded_server::start({.data_dir = dir.path() / "nats"});
  ASSERT_TRUE(server) << server.error();
  pid_t pid = server->pid();
  EXPECT_TRUE(process_exists(pid));
  EXPECT_NE(server->port(), 0);
  {
    auto conn = jetsource::connection::connect({.urls = {server->url()}});
    ASSERT_TRUE(conn) << conn.error();
    EXPECT_TRUE(conn->connected());
    EXPECT_EQ(conn->connected_url(), server->url());
    EXPECT_EQ(conn->max_payload(), 1024 * 1024);
  }
  ASSERT_TRUE(server->stop());
  EXPECT_FALSE(server->running());
  EXPECT_FALSE(process_exists(pid));
}

TEST(EmbeddedServerTest, MissingBinaryIsAClearError) {
  temp_dir dir;
  auto server = jetsource::embedded_server::start(
      {.data_dir = dir.path(), .binary = "/nonexistent/nats-server"});
  ASSERT_FALSE(server);
  EXPECT_TRUE(server.error().is(errc::server_binary)) << server.error();
  EXPECT_NE(server.error().message.find("/nonexistent/nats-server"), std::string::npos);
  auto by_name = jetsource::embedded_server::start(
      {.data_dir = dir.path(), .binary = "no-such-nats-server-binary"});
  ASSERT_FALSE(by_name);
  EXPECT_TRUE(by_name.error().is(errc::server_binary)) << by_name.error();
}

TEST(EmbeddedServerTest, BinaryThatDiesOnStartupIsAClearErrorWithItsLog) {
  temp_dir dir;
  auto script = dir.path() / "crashing-nats-server";
  {
    std::ofstream s(script);
    s << "#!/bin/sh\necho 'fatal: simulated start-up failure' >&2\nexit 3\n";
  }
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto server = jetsource::embedded_server::start(
      {.data_dir = dir.path() / "nats", .binary = script.string()});
  ASSERT_FALSE(server);
  EXPECT_TRUE(server.error().is(errc::server_binary)) << server.error();
  EXPECT_NE(server.error().message.find("exit code 3"), std::string::npos) << server.error();
  EXPECT_NE(server.error().message.find("simulated start-up failure"), std::string::npos)
      << server.error();
}

TEST(EmbeddedServerTest, ConflictingArgumentsMakeTheServerExitWithItsReason) {
  temp_dir dir;
  auto server = jetsource::embedded_server::start(
      {.data_dir = dir.path() / "nats", .extra_args = {"--no-such-flag"}});
  ASSERT_FALSE(server);
  EXPECT_TRUE(server.error().is(errc::server_binary)) << server.error();
}

TEST(EmbeddedServerTest, RuntimeEmbedsAServerWhenNoUrlIsGiven) {
  temp_dir dir;
  auto rt = jetsource::runtime::open({}, dir.path() / "nats");
  ASSERT_TRUE(rt) << rt.error();
  ASSERT_TRUE(rt->server.has_value());
  EXPECT_EQ(rt->conn.connected_url(), rt->server->url());
  pid_t pid = rt->server->pid();
  rt = jetsource::make_error(errc::internal, "closed");  // destroys the runtime
  EXPECT_FALSE(process_exists(pid));
}

TEST(ConnectionTest, UnreachableServerIsAClearError) {
  jetsource::connection_options o;
  o.urls = {"nats://127.0.0.1:1"};
  o.connect_timeout = std::chrono::milliseconds{500};
  auto conn = jetsource::connection::connect(o);
  ASSERT_FALSE(conn);
  EXPECT_TRUE(conn.error().is(errc::unreachable)) << conn.error();
  EXPECT_NE(conn.error().message.find("127.0.0.1:1"), std::string::npos) << conn.error();
}

TEST(ConnectionTest, NoUrlIsAnInvalidArgument) {
  auto conn = jetsource::connection::connect({});
  ASSERT_FALSE(conn);
  EXPECT_TRUE(conn.error().is(errc::invalid_argument)) << conn.error();
}

TEST(ConnectionTest, WrongTokenIsRefused) {
  temp_dir dir;
  auto server = jetsource::embedded_server::start(
      {.data_dir = dir.path() / "nats", .extra_args = {"--auth", "s3cret"}});
  ASSERT_TRUE(server) << server.error();
  auto bad = jetsource::connection::connect({.urls = {server->url()}, .token = "wrong"});
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(errc::unreachable)) << bad.error();
  auto good = jetsource::connection::connect({.urls = {server->url()}, .token = "s3cret"});
  ASSERT_TRUE(good) << good.error();
}

TEST(ConnectionTest, UserAndPasswordArePassedThrough) {
  temp_dir dir;
  auto server = jetsource::embedded_server::start(
      {.data_dir = dir.path() / "nats", .extra_args = {"--user", "ada", "--pass", "pw"}});
  ASSERT_TRUE(server) << server.error();
  auto bad =
      jetsource::connection::connect({.urls = {server->url()}, .user = "ada", .password = "no"});
  EXPECT_FALSE(bad);
  auto good =
      jetsource::connection::connect({.urls = {server->url()}, .user = "ada", .password = "pw"});
  ASSERT_TRUE(good) << good.error();
}

class ReconnectTest : public jetsource::test::nats_test {};

TEST_F(ReconnectTest, ReconnectsAfterTheServerComesBack) {
  ASSERT_TRUE(conn_->connected());
  crash_and_restart_server();
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    back = conn_->connected();
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  EXPECT_TRUE(back);
}

}  // namespace
