// Test support: the order-system binary (ORDER_SYSTEM_BIN) run as a user runs it, against the
// fixture's real nats-server: spawn, wait (killed after 2 minutes), exit code, stdout, stderr.
#pragma once

#include <jetsource/repository.hpp>

#include <nlohmann/json.hpp>

#include <order_system/order.hpp>
#include <order_system/stream.hpp>

#include "nats_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace jetsource::test {

inline nlohmann::json json_of(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << text;
  return j;
}

inline std::vector<std::string> keys_of(const nlohmann::json& j) {
  std::vector<std::string> out;
  for (const auto& [k, v] : j.items()) out.push_back(k);
  return out;
}

struct outcome {
  int code = -1;    ///< exit code; -1 when the process did not exit normally
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class order_cli_test : public nats_test {
 protected:
  void TearDown() override {
    // Processes a failed test left running (serve, after an ASSERT): ended by PID, and what they
    // printed shown, since it is often why the test failed.
    // A test that reaped one itself (waitpid) makes this waitpid fail: nothing is sent then.
    for (pid_t pid : running_) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == 0) {  // still running: ours
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
      }
      if (r >= 0 && HasFailure())
        std::fprintf(stderr, "--- pid %d, left running, stderr:\n%s---\n", static_cast<int>(pid),
                     slurp(files_[pid].second).c_str());
    }
    running_.clear();
    store_.reset();
    nats_test::TearDown();
  }

  // Starts the binary with the global options first (no --nats-url when `url` is empty: the
  // embedded server); stdout and stderr go to files.
  pid_t spawn(const std::vector<std::string>& args, const std::string& url) {
    // JETSOURCE_ORDER_SYSTEM_BIN runs the tests against another build (e.g. an older one, to
    // show a regression test fails there).
    const char* other = std::getenv("JETSOURCE_ORDER_SYSTEM_BIN");
    std::vector<std::string> all{other && *other ? other : ORDER_SYSTEM_BIN, "--data-dir",
                                 cli_dir().string()};
    if (!url.empty()) all.insert(all.end(), {"--nats-url", url});
    all.insert(all.end(), args.begin(), args.end());
    return spawn_program(std::move(all));
  }

  // Starts any program (argv[0] a path), stdout and stderr to files; wait() reads them.
  pid_t spawn_program(std::vector<std::string> all) {
    int n = next_++;
    auto out = (dir_.path() / ("out-" + std::to_string(n))).string();
    auto err = (dir_.path() / ("err-" + std::to_string(n))).string();
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&files, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> envp;  // extra_env_ first (getenv finds the first), then the test's
    for (auto& e : extra_env_) envp.push_back(e.data());
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    envp.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&files);
    EXPECT_EQ(rc, 0) << "cannot start " << all[0] << ": " << std::strerror(rc);
    if (rc == 0) {
      files_[pid] = {out, err};
      running_.insert(pid);
    }
    return rc == 0 ? pid : -1;
  }

  // Waits for a process we spawned; one still running after 2 minutes is killed (a failure).
  outcome wait(pid_t pid) {
    outcome o;
    if (pid <= 0) return o;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes{2};
    for (;;) {
      pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) break;
      if (done < 0 && errno != EINTR) {
        ADD_FAILURE() << "waitpid " << pid << ": " << std::strerror(errno);
        return o;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "pid " << pid << " still running after 2 minutes; killed";
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    running_.erase(pid);
    if (WIFEXITED(status)) o.code = WEXITSTATUS(status);
    o.out = slurp(files_[pid].first);
    o.err = slurp(files_[pid].second);
    return o;
  }

  outcome run(const std::vector<std::string>& args) { return wait(spawn(args, server_->url())); }
  // Against a URL where no server listens: any I/O attempt would fail with exit code 1.
  outcome run_offline(const std::vector<std::string>& args) {
    return wait(spawn(args, "nats://127.0.0.1:1"));
  }

  /// The --data-dir of the processes spawned (tests may point it elsewhere: another copy).
  const std::filesystem::path& cli_dir() const { return cli_dir_; }
  void use_data_dir(std::filesystem::path p) { cli_dir_ = std::move(p); }

  event_store& store() {
    if (!store_) store_.emplace(open_store(order_system::orders_stream()));
    return *store_;
  }
  loaded<order_system::order> load(const std::string& id) {
    repository<order_system::order> orders{store()};
    auto l = orders.load(id);
    EXPECT_TRUE(l) << l.error();
    return l ? std::move(l).value() : loaded<order_system::order>{};
  }
  std::uint64_t commits() { return store().last_sequence().value_or(0); }

  // Creates o-1 for c-1 with widget 2 x 250 and gadget 1 x 1000 (total 1500).
  void create_sample() {
    auto r = run({"order", "create", "--customer", "c-1", "--order-id", "o-1", "--item",
                  "widget:2:250", "--item", "gadget:1:1000"});
    ASSERT_EQ(r.code, 0) << r.err;
  }

  // Polls `query ...` until `pred` holds on its JSON (serve applies asynchronously).
  template <class Pred>
  nlohmann::json query_until(const std::vector<std::string>& args, Pred pred) {
    nlohmann::json j;
    for (int i = 0; i < 200; ++i) {
      auto r = run(args);
      if (r.code == 0) {
        j = json_of(r.out);
        if (pred(j)) return j;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    ADD_FAILURE() << "condition never held; last: " << j.dump();
    return j;
  }
  // SIGTERM to a process we spawned (serve), which must then exit 0.
  void stop(pid_t serve) {
    ASSERT_EQ(::kill(serve, SIGTERM), 0);
    auto r = wait(serve);
    EXPECT_EQ(r.code, 0) << r.err;
  }

  std::filesystem::path cli_dir_ = dir_.path() / "cli";
  std::vector<std::string> extra_env_;  ///< NAME=VALUE added to the spawned processes' environment
  std::optional<event_store> store_;
  std::map<pid_t, std::pair<std::string, std::string>> files_;
  std::set<pid_t> running_;  // spawned, not waited for yet
  int next_ = 0;
};

}  // namespace jetsource::test
