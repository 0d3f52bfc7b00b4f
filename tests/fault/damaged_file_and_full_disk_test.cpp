// Issue 10, faults 3 and 5: a damaged read-model file stops that read model with a clear error
// (never retried forever as if it were transient), and stopping on a disk that refuses writes is
// bounded by the drain timeout in total, losing and doubling nothing.
#include <jetsource/projector.hpp>
#include <jetsource/sqlite.hpp>

#include "order_cli_fixture.hpp"
#include "projector_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Flushes the WAL into the main file (the projector may be running but idle), so that what
// the file holds at the page is what every reader gets.
void checkpoint_fully(const std::filesystem::path& file) {
  auto db = sqlite::database::open(file.string());
  ASSERT_TRUE(db) << db.error();
  for (int i = 0; i < 200; ++i) {
    auto row = db->query_one("PRAGMA wal_checkpoint(TRUNCATE)");
    ASSERT_TRUE(row) << row.error();
    if (*row && (*row)->get<int>(0) == 0) return;  // not busy: everything is in the file
    std::this_thread::sleep_for(20ms);
  }
  FAIL() << "the WAL of " << file << " never checkpointed";
}

// Writes garbage over the root page of `table` (a table b-tree page) in the main file.
void damage_table(const std::filesystem::path& file, const std::string& table) {
  checkpoint_fully(file);
  std::int64_t root = 0, page_size = 0;
  {
    auto db = sqlite::database::open(file.string());
    ASSERT_TRUE(db) << db.error();
    auto r = db->query_one("SELECT rootpage FROM sqlite_schema WHERE name = ?1", table);
    ASSERT_TRUE(r && *r) << "no table " << table;
    root = (*r)->get<std::int64_t>(0);
    auto ps = db->query_one("PRAGMA page_size");
    ASSERT_TRUE(ps && *ps);
    page_size = (*ps)->get<std::int64_t>(0);
  }
  ASSERT_GT(root, 1);
  std::vector<char> garbage(static_cast<std::size_t>(page_size), static_cast<char>(0xA5));
  int fd = ::open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto written = ::pwrite(fd, garbage.data(), garbage.size(), (root - 1) * page_size);
  ::close(fd);
  ASSERT_EQ(written, page_size);
  // A real write through SQLite (page 1 only): every open connection drops its page cache at
  // its next transaction, so a running projector reads the damaged page from the file.
  auto db = sqlite::database::open(file.string());
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(db->execute("PRAGMA user_version = 77"));
}

// --- a damaged file under a running projector (the library) ----------------------------------

class DamagedReadModelTest : public projector_test {};

TEST_F(DamagedReadModelTest, CorruptionWhileRunningFailsTheProjectorAndStartRefusesTheFile) {
  std::uint64_t last = 0;
  for (int i = 0; i < 300; ++i) last = run("acc-" + std::to_string(i), bank::open_account{"o", 1});
  auto opts = options("balances.db", 2);
  opts.drain_timeout = 3s;
  auto file = dir_.path() / "balances.db";
  {
    auto p = start(opts);
    ASSERT_TRUE(p.wait_for(last, 20s));
    damage_table(current_file(file), "balances");
    auto seq = run("acc-7", bank::deposit{5, "after the damage"});
    // It stops with a clear error instead of retrying a damaged page forever.
    projection_status st;
    auto deadline = steady::now() + 20s;
    while (steady::now() < deadline) {
      auto s = p.status();
      if (s) st = *s;
      if (st.state == "failed") break;
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(st.state, "failed");
    EXPECT_NE(st.error.find("corrupt: rebuild needed"), std::string::npos) << st.error;
    EXPECT_LT(st.last_applied_seq, seq);  // the event it could not commit is not applied
    auto err = p.failure();
    ASSERT_TRUE(err);
    EXPECT_TRUE(err->is(errc::corrupt)) << *err;
    // Nothing is left to drain: stopping does not wait for the drain timeout.
    auto t0 = steady::now();
    EXPECT_TRUE(p.stop());
    EXPECT_LT(steady::now() - t0, opts.drain_timeout);
  }
  // The cheap check at start catches the damage before anything is applied.
  auto again = projector::start(*conn_, balances_projection(), opts);
  ASSERT_FALSE(again) << "started on a damaged file";
  EXPECT_TRUE(again.error().is(errc::corrupt)) << again.error();
  EXPECT_NE(again.error().message.find("rebuild needed"), std::string::npos) << again.error();
}

// --- the order-system binary -----------------------------------------------------------------

class DamagedAndFullDiskCliTest : public order_cli_test {
 protected:
  // Polls a spawned process's stderr file until `pred` holds (bounded).
  template <class Pred>
  std::string stderr_until(pid_t pid, Pred pred, std::chrono::seconds limit = 30s) {
    std::string text;
    for (auto deadline = steady::now() + limit; steady::now() < deadline;) {
      text = slurp(files_[pid].second);
      if (pred(text)) return text;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "stderr never matched; it was:\n" << text;
    return text;
  }

  // `order-system serve` whose files may not grow past `max_file_bytes` (RLIMIT_FSIZE, with
  // SIGXFSZ ignored: a write past it fails with EFBIG, as on a full disk).
  pid_t spawn_serve_on_full_disk(rlim_t max_file_bytes) {
    int n = next_++;
    auto out = (dir_.path() / ("out-" + std::to_string(n))).string();
    auto err = (dir_.path() / ("err-" + std::to_string(n))).string();
    std::vector<std::string> all{ORDER_SYSTEM_BIN, "--data-dir",   cli_dir().string(),
                                 "--nats-url",     server_->url(), "serve"};
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {  // only async-signal-safe calls until exec
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(127);
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGXFSZ, &ignore, nullptr);
      rlimit limit{max_file_bytes, max_file_bytes};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    EXPECT_GT(pid, 0) << std::strerror(errno);
    if (pid > 0) files_[pid] = {out, err};
    return pid;
  }

  // Sends SIGTERM and waits (killing it after `limit`); the time it took to exit.
  std::pair<outcome, steady::duration> terminate(pid_t pid, std::chrono::seconds limit) {
    auto t0 = steady::now();
    EXPECT_EQ(::kill(pid, SIGTERM), 0);
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) != pid) {
      if (steady::now() - t0 > limit) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    auto took = steady::now() - t0;
    outcome o;
    if (WIFEXITED(status)) o.code = WEXITSTATUS(status);
    o.err = slurp(files_[pid].second);
    return {o, took};
  }

  int load(int orders) {
    auto r = run(
        {"load", "--orders", std::to_string(orders), "--customers", "50", "--concurrency", "4"});
    EXPECT_EQ(r.code, 0) << r.err;
    std::smatch m;
    EXPECT_TRUE(std::regex_search(r.out, m, std::regex("load: ([0-9]+) orders"))) << r.out;
    return m.empty() ? 0 : std::stoi(m[1]);
  }

  std::filesystem::path model(const std::string& name) {
    return current_file(cli_dir() / (name + ".db"));
  }

  std::int64_t scalar(const std::string& name, const std::string& sql) {
    auto db = open_read_model(cli_dir() / (name + ".db"));
    EXPECT_TRUE(db) << db.error();
    if (!db) return -1;
    auto row = db->query_one(sql);
    EXPECT_TRUE(row && *row) << sql;
    return row && *row ? (*row)->get<std::int64_t>(0) : -1;
  }

  void wait_all_applied(std::uint64_t seq) {
    for (const char* name : {"order_summary", "customer_stats", "product_sales"})
      EXPECT_TRUE(wait_applied(cli_dir() / (std::string(name) + ".db"), name, seq, 60s))
          << name << " did not reach " << seq;
  }
};

TEST_F(DamagedAndFullDiskCliTest, ServeOnADamagedFileStopsThatModelKeepsTheOthersAndFails) {
  int orders = load(150);
  pid_t serve = spawn({"serve"}, server_->url());
  wait_all_applied(commits());
  stop(serve);
  damage_table(model("order_summary"), "orders");

  serve = spawn({"serve"}, server_->url());
  auto err = stderr_until(serve, [](const std::string& t) {
    return t.find("order_summary") != std::string::npos &&
           t.find("corrupt: rebuild needed") != std::string::npos;
  });
  // The other read models keep being served: a new order reaches customer_stats.
  orders += load(10);
  const auto last = commits();
  for (const char* name : {"customer_stats", "product_sales"})
    EXPECT_TRUE(wait_applied(cli_dir() / (std::string(name) + ".db"), name, last, 60s)) << name;
  EXPECT_EQ(scalar("customer_stats", "SELECT sum(orders_created) FROM customers"), orders);
  // Another process's status says so too (the file itself cannot tell).
  auto st = run({"projections", "status", "--json"});
  ASSERT_EQ(st.code, 0) << st.err;
  auto list = nlohmann::json::parse(st.out);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["state"], "failed") << list[0].dump();
  EXPECT_NE(list[0]["error"].get<std::string>().find("corrupt: rebuild needed"), std::string::npos);
  EXPECT_EQ(list[1]["state"], "live") << list[1].dump();
  auto [r, took] = terminate(serve, 60s);
  EXPECT_EQ(r.code, 1) << "serve must end non-zero after a read model failed\n" << r.err;
  EXPECT_NE(r.err.find("order_summary: corrupt: rebuild needed"), std::string::npos) << r.err;
}

TEST_F(DamagedAndFullDiskCliTest, StopOnAFullDiskIsBoundedAndLosesNothing) {
  int orders = load(100);
  pid_t serve = spawn({"serve"}, server_->url());
  wait_all_applied(commits());
  stop(serve);
  // Enough backlog for several group commits per read model, on a disk that refuses them: no
  // file may grow past 32 KiB (SQLite's -shm file needs exactly that), and every read-model
  // file is already bigger, so new pages (and soon every WAL frame) cannot be written.
  constexpr rlim_t limit = 32 * 1024;
  for (const char* name : {"order_summary", "customer_stats", "product_sales"}) {
    auto db = sqlite::database::open(model(name).string());
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE(db->execute_script(
        "CREATE TABLE test_padding (b BLOB); INSERT INTO test_padding VALUES (zeroblob(40000));"));
  }
  for (const char* name : {"order_summary", "customer_stats", "product_sales"})
    ASSERT_GT(std::filesystem::file_size(model(name)), limit) << name;
  orders += load(800);
  serve = spawn_serve_on_full_disk(limit);
  (void)stderr_until(serve, [](const std::string& t) {
    for (const char* name : {"order_summary", "customer_stats", "product_sales"})
      if (!std::regex_search(t, std::regex(std::string("projection ") + name + ": .*retrying")))
        return false;
    return true;
  });
  const auto drain_timeout = 10s;  // serve's default
  auto [r, took] = terminate(serve, 120s);
  std::fprintf(stderr, "serve on a full disk stopped in %.1f s\n",
               std::chrono::duration<double>(took).count());
  EXPECT_LT(took, drain_timeout + 4s)
      << "serve took " << std::chrono::duration<double>(took).count() << " s to stop\n"
      << r.err;

  // The disk is fine again: a new serve applies every event, none twice.
  serve = spawn({"serve"}, server_->url());
  wait_all_applied(commits());
  stop(serve);
  EXPECT_EQ(scalar("order_summary", "SELECT count(*) FROM orders"), orders);
  EXPECT_EQ(scalar("customer_stats", "SELECT sum(orders_created) FROM customers"), orders);
  const auto events = scalar("order_summary", "SELECT sum(version) FROM orders");
  for (const char* name : {"order_summary", "customer_stats", "product_sales"})
    EXPECT_EQ(scalar(name, "SELECT events_applied FROM projection_state"), events) << name;
}

}  // namespace
}  // namespace jetsource::test
