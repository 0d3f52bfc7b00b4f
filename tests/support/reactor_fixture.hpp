// Test support for reactors (issue 12): a bank store on stream TEST, an in-process recorder of
// handled events, the "audit" reactor over the accounts, and member processes
// (tests/tools/reactor_member.cpp) spawned and stopped by PID.
#pragma once

#include <jetsource/reactor.hpp>
#include <jetsource/repository.hpp>

#include <bank/account.hpp>

#include "nats_fixture.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace jetsource::test {

/// One handled event as a handler saw it.
struct handled_event {
  std::string instance, type, id;
  std::uint64_t version = 0, sequence = 0, epoch = 0;
  std::int64_t at_ns = 0;  ///< CLOCK_REALTIME when handled (member processes only)
};

/// Handled events in the order handlers recorded them (thread-safe).
class recorder {
 public:
  void add(std::string instance, const reaction_context& cx) {
    std::lock_guard lk(m_);
    events_.push_back({std::move(instance), std::string(cx.aggregate_type()),
                       std::string(cx.aggregate_id()), cx.version(), cx.sequence(), cx.epoch(), 0});
  }
  std::vector<handled_event> events() const {
    std::lock_guard lk(m_);
    return events_;
  }
  std::size_t size() const {
    std::lock_guard lk(m_);
    return events_.size();
  }

 private:
  mutable std::mutex m_;
  std::vector<handled_event> events_;
};

/// The "audit" reactor: records every account event into `rec` as `instance`; `fail` (may be
/// empty) decides whether a call fails.
inline reactor audit_reactor(recorder& rec, std::string instance, std::string name = "audit",
                             std::function<bool(const reaction_context&)> fail = {}) {
  auto h = [&rec, instance, fail](reaction_context& cx) -> result<void> {
    if (fail && fail(cx)) return error{errc::io, "the sink is down"};
    rec.add(instance, cx);
    return success();
  };
  return reactor(std::move(name))
      .follow("test.Account.>")
      .on<bank::account_opened>([h](auto& cx, const auto&) { return h(cx); })
      .on<bank::deposited>([h](auto& cx, const auto&) { return h(cx); })
      .on<bank::withdrawn>([h](auto& cx, const auto&) { return h(cx); })
      .on<bank::account_closed>([h](auto& cx, const auto&) { return h(cx); });
}

/// Every (id, version) seen at least once, and whether each aggregate's versions, in the order
/// they were FIRST handled, strictly increase. Returns a description of the first violation.
inline std::string first_handling_violation(const std::vector<handled_event>& events) {
  std::map<std::string, std::uint64_t> last_first;  // id -> highest version first-handled
  std::set<std::pair<std::string, std::uint64_t>> seen;
  for (const auto& e : events) {
    if (!seen.emplace(e.id, e.version).second) continue;  // a repeat
    auto& v = last_first[e.id];
    if (e.version <= v)
      return e.id + " version " + std::to_string(e.version) + " first handled after version " +
             std::to_string(v) + " (by " + e.instance + ")";
    v = e.version;
  }
  return "";
}

/// The lines member processes appended to `file`.
inline std::vector<handled_event> read_handled(const std::filesystem::path& file) {
  std::vector<handled_event> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream is(line);
    handled_event e;
    if (is >> e.instance >> e.type >> e.id >> e.version >> e.sequence >> e.epoch >> e.at_ns)
      out.push_back(e);
  }
  return out;
}

inline pid_t spawn_reactor_member(const std::vector<std::string>& args) {
  std::vector<std::string> all{TEST_REACTOR_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, TEST_REACTOR_BIN, nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

/// Stops member processes by PID at scope exit (SIGKILL for those still running on failure).
class member_processes {
 public:
  ~member_processes() {
    for (auto pid : pids_)
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
  }
  pid_t spawn(const std::vector<std::string>& args) {
    pids_.push_back(spawn_reactor_member(args));
    return pids_.back();
  }
  void kill9(pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    forget(pid);
  }
  /// SIGTERM, then the exit status (0: a clean stop).
  int terminate(pid_t pid) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    forget(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  void forget(pid_t pid) {
    for (auto& p : pids_)
      if (p == pid) p = 0;
  }
  std::vector<pid_t> pids_;
};

/// Waits (polling every 20 ms) until `done` or `timeout`; returns done().
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class reactor_test : public nats_test {
 protected:
  void SetUp() override {
    nats_test::SetUp();
    store_.emplace(open_store());
    repo_.emplace(*store_);
  }
  void TearDown() override {
    repo_.reset();
    store_.reset();
    nats_test::TearDown();
  }

  template <class C>
  std::uint64_t run(const std::string& id, const C& command) {
    auto r = repo_->execute(id, command);
    EXPECT_TRUE(r) << id << ": " << r.error();
    return r ? r->sequence : 0;
  }

  /// Opens accounts "<prefix>0".."<prefix>n-1"; returns the expected (id -> version) map.
  std::map<std::string, std::uint64_t> open_accounts(const std::string& prefix, int n) {
    std::map<std::string, std::uint64_t> v;
    for (int i = 0; i < n; ++i) {
      const auto id = prefix + std::to_string(i);
      run(id, bank::open_account{"owner-" + id, 0});
      v[id] = 1;
    }
    return v;
  }

  reactor_options options(std::string instance, int lease_ms = 1500) {
    reactor_options o;
    o.stream = "TEST";
    o.instance = std::move(instance);
    o.lease = std::chrono::milliseconds(lease_ms);
    o.metrics = nullptr;
    return o;
  }

  /// True when every (id, 1..version) of `expected` is among `events`.
  static bool covers(const std::vector<handled_event>& events,
                     const std::map<std::string, std::uint64_t>& expected) {
    std::map<std::string, std::set<std::uint64_t>> got;
    for (const auto& e : events) got[e.id].insert(e.version);
    for (const auto& [id, v] : expected)
      for (std::uint64_t k = 1; k <= v; ++k)
        if (got[id].count(k) == 0) return false;
    return true;
  }

  std::optional<event_store> store_;
  std::optional<repository<bank::account>> repo_;
};

}  // namespace jetsource::test
