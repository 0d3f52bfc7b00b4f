// Regression tests of issue 10, faults 1, 2, 4 and 6: a read model must never stay silently
// empty, behind, or fed by another copy's consumer while its status says "live". Each runs the
// real order-system binary against a real nats-server, on real SQLite files.
#include <jetsource/projector.hpp>

#include "order_cli_fixture.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetsource::test::json_of;
using jetsource::test::outcome;
namespace fs = std::filesystem;

class ReadModelFaultTest : public jetsource::test::order_cli_test {
 protected:
  void create_orders(int from, int to) {
    for (int i = from; i <= to; ++i) {
      auto r = run({"order", "create", "--customer", "c-1", "--order-id", "o-" + std::to_string(i),
                    "--item", "widget:1:100"});
      ASSERT_EQ(r.code, 0) << r.err;
    }
  }

  static std::int64_t scalar(const fs::path& database, const char* sql) {
    auto db = jetsource::open_read_model(database);
    if (!db) return -1;
    auto row = db->query_one(sql);
    return row && *row ? (**row).get<std::int64_t>(0) : -1;
  }

  // Orders in order_summary and orders created in customer_stats, in the current data dir.
  std::pair<std::int64_t, std::int64_t> counts() const {
    return {scalar(cli_dir() / "order_summary.db", "SELECT count(*) FROM orders"),
            scalar(cli_dir() / "customer_stats.db",
                   "SELECT coalesce(sum(orders_created), 0) FROM customers")};
  }

  // Waits (bounded) until both read models of the current data dir hold `n` orders.
  void expect_orders(std::int64_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
    while (counts() != std::pair{n, n} && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    EXPECT_EQ(counts(), (std::pair{n, n})) << "read models of " << cli_dir();
  }

  // `projections status --json` of the current data dir.
  nlohmann::json status() {
    auto r = run({"projections", "status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json_of(r.out) : nlohmann::json::array();
  }

  // Waits until every read model reports the last commit applied and nothing pending.
  void expect_caught_up() {
    nlohmann::json last;
    for (int i = 0; i < 400; ++i) {
      last = status();
      bool done = last.size() == 3;
      for (const auto& p : last)
        done = done && p["pending"] == 0 && p["last_applied_seq"] == commits();
      if (done) return;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    ADD_FAILURE() << "not caught up with " << commits() << ": " << last.dump();
  }

  static void remove_matching(const fs::path& dir, std::string_view suffix) {
    for (const auto& f : fs::directory_iterator(dir))
      if (f.path().string().ends_with(suffix)) fs::remove(f.path());
  }
};

// Fault 1: after a rebuild has switched once, the live consumer starts at the rebuilt file's
// mark. A brand-new data dir, a file truncated to 0 bytes and deleted `.current` pointers all
// gave an empty model with "live, applied 0, pending 0".
TEST_F(ReadModelFaultTest, AFreshWipedOrTruncatedReadModelCatchesUpFromItsOwnMark) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_orders(1, 3);
  expect_orders(3);
  // A rebuild adopted by the running serve: its consumer now starts at the rebuilt file's mark
  // + 1 and, with nothing new since, has acknowledged nothing (ack floor 0 on 2.9.10).
  auto switch_to_a_rebuild = [&] {
    auto rebuilt = run({"projections", "rebuild", "order_summary"});
    ASSERT_EQ(rebuilt.code, 0) << rebuilt.err;
    ASSERT_NE(rebuilt.out.find("adopted by the running serve"), std::string::npos) << rebuilt.out;
    expect_caught_up();
    stop(serve);
  };
  switch_to_a_rebuild();

  // A .db truncated to 0 bytes (the projector closed it cleanly: no WAL beside it).
  const auto summary = jetsource::current_file(cli_dir() / "order_summary.db");
  ASSERT_NE(summary, cli_dir() / "order_summary.db") << "the rebuild switched to a generation";
  fs::resize_file(summary, 0);
  serve = spawn({"serve"}, server_->url());
  expect_orders(3);
  expect_caught_up();
  switch_to_a_rebuild();

  // Deleted pointers: a new empty file beside the full generation files.
  remove_matching(cli_dir(), ".current");
  serve = spawn({"serve"}, server_->url());
  expect_orders(3);
  expect_caught_up();
  switch_to_a_rebuild();

  // A brand-new data dir on the same server.
  use_data_dir(dir_.path() / "fresh");
  serve = spawn({"serve"}, server_->url());
  expect_orders(3);
  expect_caught_up();
  stop(serve);
}

// Fault 2: two copies of the read models (different data dirs) on one server shared one durable
// consumer: they stole each other's deliveries and adopted each other's ack floor.
TEST_F(ReadModelFaultTest, TwoCopiesOnOneServerEachSeeEveryEvent) {
  const auto a = dir_.path() / "copy-a", b = dir_.path() / "copy-b";
  use_data_dir(a);
  pid_t serve_a = spawn({"serve"}, server_->url());
  use_data_dir(b);
  pid_t serve_b = spawn({"serve"}, server_->url());
  auto load = run({"load", "--orders", "150", "--customers", "10", "--concurrency", "4"});
  ASSERT_EQ(load.code, 0) << load.err;
  for (const auto& dir : {a, b}) {
    use_data_dir(dir);
    expect_orders(150);
    expect_caught_up();
  }
  // One copy restarts while the other keeps running and more orders arrive.
  use_data_dir(b);
  stop(serve_b);
  create_orders(1, 5);
  serve_b = spawn({"serve"}, server_->url());
  for (const auto& dir : {a, b}) {
    use_data_dir(dir);
    expect_orders(155);
    expect_caught_up();
  }
  // Each copy has a consumer of its own.
  use_data_dir(a);
  auto status_a = status();
  use_data_dir(b);
  auto status_b = status();
  ASSERT_EQ(status_a.size(), 3u);
  ASSERT_EQ(status_b.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_NE(status_a[i]["consumer"], status_b[i]["consumer"]) << status_a[i].dump();
  stop(serve_b);
  use_data_dir(a);
  stop(serve_a);
}

// Fault 4: the server came back on an empty store and the stream was created again; the
// projector kept its mark far beyond the new stream's last sequence and never showed new orders.
TEST_F(ReadModelFaultTest, AStreamCreatedAgainIsReportedNotSkipped) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_orders(1, 3);
  expect_orders(3);
  store_.reset();
  const auto port = server_->port();
  server_->kill_hard();
  server_.reset();
  fs::remove_all(dir_.path() / "nats");
  start_server(port);
  create_orders(10, 10);  // creates the stream again: sequence 1

  // The running serve notices: every model stops with a clear error in its status.
  nlohmann::json last;
  bool reported = false;
  for (int i = 0; i < 300 && !reported; ++i) {
    last = status();
    reported = last.size() == 3;
    for (const auto& p : last)
      reported = reported && p["state"] == "failed" &&
                 p.value("error", "").find("created again") != std::string::npos;
    if (!reported) std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  EXPECT_TRUE(reported) << last.dump();
  // serve says so itself, and exits 1 when stopped.
  const auto serve_err = files_[serve].second;
  for (int i = 0; i < 200 && jetsource::test::slurp(serve_err).find(
                                 "order-system: order_summary: ") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  ::kill(serve, SIGTERM);
  auto stopped = wait(serve);
  EXPECT_EQ(stopped.code, 1) << stopped.err;
  EXPECT_NE(stopped.err.find("order-system: order_summary: stream_config_mismatch"),
            std::string::npos)
      << stopped.err;
  EXPECT_NE(stopped.err.find("created again"), std::string::npos) << stopped.err;

  // A new serve refuses to start on it.
  auto again = run({"serve"});
  EXPECT_EQ(again.code, 1) << again.err;
  EXPECT_NE(again.err.find("created again"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("rebuild"), std::string::npos) << again.err;
}

// Fault 6: status must not hide failures.
TEST_F(ReadModelFaultTest, StatusReportsAFileItCannotReadAsAnError) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_orders(1, 2);
  expect_orders(2);
  stop(serve);
  {
    std::ofstream garbage(jetsource::current_file(cli_dir() / "customer_stats.db"),
                          std::ios::binary | std::ios::trunc);
    garbage << std::string(8192, 'x');
  }
  auto st = run({"projections", "status"});
  EXPECT_EQ(st.code, 1) << st.out;
  EXPECT_NE(st.err.find("customer_stats"), std::string::npos) << st.err;
  auto dead = run({"projections", "dead-letters"});
  EXPECT_EQ(dead.code, 1) << dead.out;
  EXPECT_NE(dead.err.find("customer_stats"), std::string::npos) << dead.err;
  // A model that was never built is not an error.
  fs::remove(jetsource::current_file(cli_dir() / "customer_stats.db"));
  fs::remove(cli_dir() / "customer_stats.db.current");
  auto fresh = run({"projections", "status", "--json"});
  ASSERT_EQ(fresh.code, 0) << fresh.err;
  EXPECT_EQ(json_of(fresh.out)[1]["state"], "not built");
}

TEST_F(ReadModelFaultTest, StatusWithoutJetStreamIsAnError) {
  // A nats-server without -js, started and stopped by this test.
  auto port = std::to_string(server_->port() + 1000);
  std::vector<std::string> args{"nats-server", "-a", "127.0.0.1", "-p", port};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t plain = -1;
  ASSERT_EQ(posix_spawnp(&plain, "nats-server", nullptr, nullptr, argv.data(), environ), 0);
  struct reaper {
    pid_t pid;
    ~reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } guard{plain};
  outcome r;
  for (int i = 0; i < 100; ++i) {  // until it listens
    r = wait(spawn({"projections", "status"}, "nats://127.0.0.1:" + port));
    if (r.err.find("connect") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("JetStream"), std::string::npos) << r.err;
}

TEST_F(ReadModelFaultTest, StatusShowsAKilledRebuildAsInterrupted) {
  auto load = run({"load", "--orders", "3000", "--customers", "50", "--concurrency", "8"});
  ASSERT_EQ(load.code, 0) << load.err;
  pid_t rebuild = spawn({"projections", "rebuild", "customer_stats"}, server_->url());
  const auto marker = cli_dir() / "customer_stats.db.rebuilding";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (!fs::exists(marker) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds{500});
  ASSERT_TRUE(fs::exists(marker)) << "the rebuild never started";
  ASSERT_EQ(::kill(rebuild, SIGKILL), 0);
  auto killed = wait(rebuild);
  ASSERT_EQ(killed.code, -1) << "the rebuild finished before it could be killed: " << killed.out;

  auto st = status();
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[1]["name"], "customer_stats");
  EXPECT_EQ(st[1]["rebuild"], "interrupted") << st[1].dump();
  auto text = run({"projections", "status"});
  EXPECT_NE(text.out.find("interrupted"), std::string::npos) << text.out;
  // Running it again resumes and finishes.
  auto resumed = run({"projections", "rebuild", "customer_stats"});
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(status()[1]["rebuild"], "");
}

TEST_F(ReadModelFaultTest, PendingCountsFromTheFilesMarkNotTheConsumer) {
  pid_t serve = spawn({"serve"}, server_->url());
  create_orders(1, 3);
  expect_orders(3);
  stop(serve);
  // An older copy of the files (a restore from backup) behind the consumer.
  const auto backup = dir_.path() / "backup";
  fs::copy(cli_dir(), backup, fs::copy_options::recursive);
  serve = spawn({"serve"}, server_->url());
  create_orders(4, 6);
  expect_orders(6);
  stop(serve);
  for (const char* name : {"order_summary", "customer_stats", "product_sales"}) {
    auto file = jetsource::current_file(cli_dir() / (std::string(name) + ".db"));
    fs::copy_file(backup / file.filename(), file, fs::copy_options::overwrite_existing);
  }
  auto st = status();
  ASSERT_EQ(st.size(), 3u);
  for (const auto& p : st) {
    EXPECT_LT(p["last_applied_seq"], commits()) << p.dump();
    EXPECT_EQ(p["pending"], commits() - p["last_applied_seq"].get<std::uint64_t>()) << p.dump();
  }
  // And a serve on the restored files catches up from their own marks.
  serve = spawn({"serve"}, server_->url());
  expect_orders(6);
  expect_caught_up();
  stop(serve);
}

}  // namespace
