// A group of `order-system react` members spread over a 3-node cluster (issue 13 §3, services
// in many copies): member m-i is given node i's URL only (it learns the others from the
// cluster and fails over to them), and its own webhook path, so what each member handled is
// seen. Orders are paid (and half of them shipped) on the R3 ORDERS stream while the node
// leading the inventory group's bucket is SIGKILLed and restarted. Afterwards every SKU's sold
// equals the sum of its paid lines (exactly once), every notification was delivered, first
// deliveries per order in version order, and each member handled a share.
#include "cluster_fixture.hpp"
#include "cluster_retry.hpp"
#include "nats_fixture.hpp"
#include "webhook_sink.hpp"

#include <order_system/order.hpp>
#include <order_system/stock.hpp>
#include <order_system/stream.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

extern char** environ;

namespace jetsource::test {
namespace {

using namespace std::chrono_literals;
using namespace order_system;

class cluster_react : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = cluster_.start();
    ASSERT_TRUE(started) << started.error();
    auto c = connection::connect(cluster_.client_options());
    ASSERT_TRUE(c) << c.error();
    conn_.emplace(std::move(c).value());
    auto o = orders_stream();
    o.replicas = 3;
    auto s = event_store::open(*conn_, o);
    ASSERT_TRUE(s) << s.error();
    store_.emplace(std::move(s).value());
  }
  void TearDown() override {
    for (auto& [name, pid] : members_)
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
  }

  // `order-system --nats-url <node i> --replicas 3 react --instance m-i`, stderr to m-i.err.
  void start_member(int node) {
    const auto name = fmt::format("m-{}", node);
    std::vector<std::string> args{ORDER_SYSTEM_BIN,
                                  "--data-dir",
                                  (dir_.path() / name).string(),
                                  "--nats-url",
                                  cluster_.url(node),
                                  "--replicas",
                                  "3",
                                  "react",
                                  "--instance",
                                  name,
                                  "--webhook",
                                  sink_.url("/hooks/" + name),
                                  "--lease-ms",
                                  "1500",
                                  "--webhook-timeout-ms",
                                  "2000"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const auto err = (dir_.path() / (name + ".err")).string();
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&files, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    ASSERT_EQ(rc, 0);
    members_[name] = pid;
  }
  std::string log_of(const std::string& name) {
    std::ifstream in(dir_.path() / (name + ".err"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::int64_t sold(const std::string& sku) {
    repository<stock> stocks{*store_};
    auto s = stocks.load(sku);
    return s ? s->state.sold() : -1;
  }

  temp_dir dir_;
  nats_cluster cluster_{dir_.path()};
  webhook_sink sink_;
  std::optional<connection> conn_;
  std::optional<event_store> store_;
  std::map<std::string, pid_t> members_;
};

TEST_F(cluster_react, MembersOnEveryNodeShareTheWorkAndCountEveryPaidLineOnceAcrossALeaderKill) {
  // One after the other: each waits until it reacts. A member that exits first is started
  // again, as a supervisor would: on a loaded machine the first creation of an R3 group bucket
  // can outlast the request timeout ("open reactor bucket ...: Timeout", exit 1).
  int restarts = 0;
  for (int node = 0; node < 3; ++node) {
    const auto name = fmt::format("m-{}", node);
    for (int attempt = 0; attempt < 3; ++attempt) {
      start_member(node);
      if (HasFatalFailure()) return;
      int status = 0;
      bool exited = false;
      for (auto until = std::chrono::steady_clock::now() + 60s;
           log_of(name).find("reacting as") == std::string::npos &&
           std::chrono::steady_clock::now() < until;) {
        if (::waitpid(members_[name], &status, WNOHANG) == members_[name]) {
          exited = true;
          members_[name] = -1;
          break;
        }
        std::this_thread::sleep_for(100ms);
      }
      if (!exited) break;
      ++restarts;
      std::cout << name << " exited during start-up: " << log_of(name) << "\n";
    }
    ASSERT_NE(log_of(name).find("reacting as"), std::string::npos) << name << ": " << log_of(name);
  }
  std::cout << restarts << " member restart(s) during start-up\n";

  std::map<std::string, std::int64_t> expected_sold;
  std::map<std::pair<std::string, std::uint64_t>, std::string> expected_notes;  // (order, v)
  std::atomic<int> paid{0}, failed{0};
  std::jthread writer([&] {  // joined also when an assertion below returns
    repository<order> orders{*store_};
    std::mt19937 r(5);
    for (int i = 0; i < 60; ++i) {
      const auto id = fmt::format("o-{}", i);
      std::vector<order_line> lines;
      std::set<int> skus;
      for (int k = 0, n = 1 + static_cast<int>(r() % 3); k < n; ++k)
        skus.insert(static_cast<int>(r() % 6));
      std::int64_t total = 0;
      for (int s : skus) {
        lines.push_back({fmt::format("sku-{}", s), 1 + static_cast<std::int64_t>(r() % 4), 100});
        total += lines.back().qty * 100;
      }
      const bool ship = i % 2 == 0;
      bool ok =
          execute_retried(orders, id, create_order{"c-" + id, lines}, {.command_id = id + "-c"}) &&
          execute_retried(orders, id, place_order{}, {.command_id = id + "-pl"}) &&
          execute_retried(orders, id, pay_order{total}, {.command_id = id + "-pa"}) &&
          (!ship || execute_retried(orders, id, ship_order{}, {.command_id = id + "-s"}));
      if (!ok) {
        ++failed;
        continue;
      }
      for (const auto& l : lines) expected_sold[l.sku] += l.qty;
      const std::uint64_t placed = 1 + lines.size() + 1;  // created + items, then placed
      expected_notes[{id, placed}] = "OrderPlaced";
      if (ship) expected_notes[{id, placed + 2}] = "OrderShipped";
      ++paid;
      std::this_thread::sleep_for(30ms);
    }
  });

  // A third of the orders in, the node leading the inventory group's bucket dies; two thirds
  // in, it comes back.
  auto wait_paid = [&](int n) {
    auto until = std::chrono::steady_clock::now() + 180s;
    while (paid.load() + failed.load() < n && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(50ms);
  };
  wait_paid(20);
  const auto bucket_leader = cluster_.stream_leader("KV_jsr-ORDERS-inventory");
  const int victim = cluster_.index_of(bucket_leader);
  std::cout << "killing " << bucket_leader << " (KV_jsr-ORDERS-inventory; ORDERS led by "
            << cluster_.stream_leader("ORDERS") << ")\n";
  ASSERT_GE(victim, 0) << "no leader for the inventory bucket";
  const auto killed_at = std::chrono::steady_clock::now();
  cluster_.kill(victim);
  wait_paid(40);
  auto back = cluster_.start_node(victim);
  ASSERT_TRUE(back) << back.error();
  writer.join();
  EXPECT_EQ(failed.load(), 0);

  // Everyone caught up: every SKU's sold and every notification.
  auto all_delivered = [&](const std::vector<webhook_sink::request>& rs) {
    std::set<std::string> keys;
    for (const auto& r : rs)
      if (r.status == 200) keys.insert(r.idempotency_key);
    return keys.size() >= expected_notes.size();
  };
  EXPECT_TRUE(sink_.wait_until(all_delivered, 120s));
  auto caught_up = [&] {
    for (const auto& [sku, units] : expected_sold)
      if (sold(sku) < units) return false;
    return true;
  };
  for (auto until = std::chrono::steady_clock::now() + 120s;
       !caught_up() && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(100ms);
  std::cout << "caught up "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count()
            << " s after the kill\n";
  for (auto& [name, pid] : members_) {  // each survived the kill and stops cleanly
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << name << ": " << log_of(name);
    pid = -1;
  }
  for (const auto& [sku, units] : expected_sold) EXPECT_EQ(sold(sku), units) << sku;

  // Each member on its own node; each delivered a share; first deliveries in version order.
  std::set<std::string> connected;
  for (const auto& [name, pid] : members_) {
    auto log = log_of(name);
    auto on = log.find(" on nats://");
    ASSERT_NE(on, std::string::npos) << name << ": " << log;
    connected.insert(log.substr(on + 4, log.find(';', on) - on - 4));
  }
  EXPECT_EQ(connected.size(), 3u) << "each member starts on its own node";
  std::map<std::string, std::size_t> share;
  std::map<std::string, std::vector<std::uint64_t>> first_seen;  // order -> versions
  std::set<std::string> seen;
  std::size_t repeats = 0;
  for (const auto& r : sink_.delivered()) {
    auto it = expected_notes.find({r.order_id, r.version});
    ASSERT_NE(it, expected_notes.end()) << "unexpected notification " << r.body;
    EXPECT_EQ(r.event, it->second) << r.body;
    ++share[r.path];
    if (seen.insert(r.idempotency_key).second)
      first_seen[r.order_id].push_back(r.version);
    else
      ++repeats;
  }
  EXPECT_EQ(seen.size(), expected_notes.size());
  for (const auto& [id, versions] : first_seen)
    EXPECT_TRUE(std::is_sorted(versions.begin(), versions.end())) << id;
  for (int node = 0; node < 3; ++node) {
    const auto path = fmt::format("/hooks/m-{}", node);
    EXPECT_GT(share[path], 0u) << path << " handled nothing";
    std::cout << path << ": " << share[path] << " notifications\n";
  }
  std::cout << expected_notes.size() << " notifications, " << repeats << " repeated\n";
}

}  // namespace
}  // namespace jetsource::test
