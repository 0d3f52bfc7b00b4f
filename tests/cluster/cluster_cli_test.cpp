// order-system on a 3-node cluster: --nats-url with several URLs (fail-over when the node it
// talks to is killed) and --replicas (the ORDERS stream created with 3 replicas; an existing
// stream with other replicas is a clear error, exit 1).
#include "cluster_fixture.hpp"
#include "nats_fixture.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace jetsource::test {
namespace {

struct ran {
  int code = -1;
  std::string out, err;
};

class cluster_cli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = cluster_.start();
    ASSERT_TRUE(r) << r.error();
  }

  void TearDown() override {
    for (pid_t p : serving_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }

  // Starts order-system with `data_dir` and the arguments; stdout/stderr to <log>.out/.err
  // (`log` "": <data_dir>.out/.err).
  pid_t spawn(const std::string& data_dir, std::vector<std::string> args,
              const std::string& log = "") {
    std::vector<std::string> all{ORDER_SYSTEM_BIN, "--data-dir", (dir_.path() / data_dir).string()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string name = log.empty() ? data_dir : log;
    auto out = (dir_.path() / (name + ".out")).string();
    auto err = (dir_.path() / (name + ".err")).string();
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&files, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    return rc == 0 ? pid : -1;
  }

  // Runs order-system with --data-dir and the given global options, waits (at most 2 minutes).
  ran run(std::vector<std::string> args, const std::string& data_dir = "cli") {
    auto out = (dir_.path() / (data_dir + ".out")).string();
    auto err = (dir_.path() / (data_dir + ".err")).string();
    pid_t pid = spawn(data_dir, std::move(args));
    ran r;
    if (pid < 0) return r;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes{2};
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
    auto slurp = [](const std::string& p) {
      std::ifstream in(p);
      std::stringstream s;
      s << in.rdbuf();
      return s.str();
    };
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  temp_dir dir_;
  nats_cluster cluster_{dir_.path()};
  std::vector<pid_t> serving_;  // serve processes, killed at the end if still running
};

TEST_F(cluster_cli, SeveralUrlsAndReplicasCreateAnR3StreamAndSurviveTheLossOfANode) {
  const auto urls = cluster_.url_list();
  auto created = run({"--nats-url", urls, "--replicas", "3", "order", "create", "--customer", "c-1",
                      "--order-id", "o-1"});
  ASSERT_EQ(created.code, 0) << created.err;
  auto c = connection::connect(cluster_.client_options());
  ASSERT_TRUE(c) << c.error();
  auto s = event_store::open(
      *c, {.stream = "ORDERS", .subject_prefix = "orders", .replicas = 3});  // verifies: R3
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->scheme(), concurrency_scheme::commit_slot);  // nats-server 2.9.10

  // The first URL's node dies: the command connects to another one. While the streams it led
  // elect new leaders (seconds) a command can time out (exit 1); retried with its command id,
  // it lands once.
  cluster_.kill(0);
  ran added;
  int tries = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  do {
    ++tries;
    added = run({"--nats-url", urls, "--replicas", "3", "order", "add-item", "o-1", "--sku", "bolt",
                 "--qty", "2", "--unit-price-cents", "5", "--command-id", "add-1"});
  } while (added.code == 1 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(added.code, 0) << added.err;
  std::fprintf(stderr, "add-item after the kill: %d attempt(s)\n", tries);
  auto log = s->read("Order", "o-1");
  ASSERT_TRUE(log) << log.error();
  EXPECT_EQ(log->commits.size(), 2u);
}

TEST_F(cluster_cli, AnExistingStreamWithOtherReplicasIsAClearErrorExitOne) {
  const auto urls = cluster_.url_list();
  ASSERT_EQ(run({"--nats-url", urls, "--replicas", "3", "order", "create", "--customer", "c-1",
                 "--order-id", "o-1"})
                .code,
            0);
  auto r1 = run({"--nats-url", urls, "order", "place", "o-1"});  // --replicas 1 by default
  EXPECT_EQ(r1.code, 1);
  EXPECT_NE(r1.err.find("replicas 3 (want 1)"), std::string::npos) << r1.err;
  auto bad = run({"--nats-url", urls, "--replicas", "9", "order", "place", "o-1"});
  EXPECT_EQ(bad.code, 2) << bad.err;
}

}  // namespace
}  // namespace jetsource::test

namespace jetsource::test {
namespace {

// Two read-model copies: `serve` on two data dirs (each its own SQLite files and durable
// consumer) against the cluster answer the same queries after the same writes, also when a
// node dies in between.
TEST_F(cluster_cli, TwoServeCopiesOnDifferentDataDirsAnswerTheSameQueries) {
  const auto urls = cluster_.url_list();
  const std::vector<std::string> global{"--nats-url", urls, "--replicas", "3"};
  // A command, retried with its command id while the cluster elects leaders after the kill
  // (it times out then, exit 1): it lands once.
  int commands = 0;
  auto cmd = [&](std::vector<std::string> args) {
    std::vector<std::string> all = global;
    all.insert(all.end(), args.begin(), args.end());
    all.insert(all.end(), {"--command-id", fmt::format("cmd-{}", ++commands)});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    ran r;
    do r = run(all);
    while (r.code == 1 && std::chrono::steady_clock::now() < deadline);
    EXPECT_EQ(r.code, 0) << r.err;
  };
  auto order = [&](int n) {
    auto id = fmt::format("o-{}", n);
    cmd({"order", "create", "--customer", "c-1", "--order-id", id});
    cmd({"order", "add-item", id, "--sku", "bolt", "--qty", "2", "--unit-price-cents", "5"});
    cmd({"order", "place", id});
    cmd({"order", "pay", id, "--amount-cents", "10"});
  };
  order(1);  // creates the stream
  for (const char* copy : {"copy-a", "copy-b"}) {
    std::vector<std::string> args = global;
    args.push_back("serve");
    serving_.push_back(spawn(copy, args, std::string(copy) + "-serve"));
    ASSERT_GT(serving_.back(), 0);
  }
  auto query = [&](const std::string& copy, std::vector<std::string> q) {
    q.insert(q.begin(), "query");
    q.push_back("--json");
    return run(q, copy);
  };
  auto serve_log = [&](const std::string& copy) {
    std::ifstream in(dir_.path() / (copy + "-serve.err"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  // Both copies running and caught up with the first order before a node dies.
  for (const char* copy : {"copy-a", "copy-b"}) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    while (query(copy, {"order", "o-1"}).code != 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    ASSERT_EQ(query(copy, {"order", "o-1"}).code, 0) << copy << ": " << serve_log(copy);
  }
  order(2);
  cluster_.kill(0);  // the first URL's node
  order(3);
  ASSERT_TRUE(cluster_.start_node(0));
  order(4);

  // Both copies catch up: 4 paid orders of 2 bolts each.
  for (const char* copy : {"copy-a", "copy-b"}) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = query(copy, {"product", "bolt"});
      last = r.out + r.err;
      if (r.code == 0 && r.out.find("\"units_sold\":8") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
    EXPECT_NE(last.find("\"units_sold\":8"), std::string::npos)
        << copy << ": " << last << "\nserve: " << serve_log(copy);
  }
  for (std::vector<std::string> q : {std::vector<std::string>{"product", "bolt"},
                                     {"customer", "c-1"},
                                     {"order", "o-1"},
                                     {"order", "o-4"}}) {
    // Each read model catches up on its own (product_sales above may be ahead of the others).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    auto a = query("copy-a", q), b = query("copy-b", q);
    while ((a.code != 0 || a.out != b.out) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
      a = query("copy-a", q);
      b = query("copy-b", q);
    }
    EXPECT_EQ(a.code, 0) << a.err;
    EXPECT_EQ(a.out, b.out) << q[0] << " " << q[1];
  }
  for (pid_t p : serving_) {
    ::kill(p, SIGTERM);
    int status = 0;
    ::waitpid(p, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  serving_.clear();
}

}  // namespace
}  // namespace jetsource::test
