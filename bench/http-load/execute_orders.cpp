// jetsource-http-load-execute: the in-process reference for bench/http-load/run.sh. The same
// order commands the HTTP load sends (create with 2 items, place, pay; one order after the
// other) from C client threads through ONE repository<order>, on the same nats-server and
// stream (ORDERS) as the `serve` under test, in two modes:
//   --mode async  repository::execute_async: each client submits its commands without waiting
//                 (commands on one order still run in call order), then flush; the rate is
//                 commands / time until every outcome came back. With --window N a client keeps
//                 at most N commands in flight (it waits for an outcome before submitting more);
//                 --window 1 is a client that, like a keep-alive HTTP connection (wrk does not
//                 pipeline), has one command at a time outstanding. 0 (default): no bound.
//   --mode sync   repository::execute: each client waits for each command, as a keep-alive
//                 HTTP connection does.
// --delay-ms D: each client waits D ms (on average; may be fractional) before each command after
// its first, as mix.lua's HTTP_LOAD_DELAY_MS does: the command path alone at a chosen rate.
// Prints one line: execute_orders mode=.. clients=.. commands=.. seconds=.. commands_per_s=..
// errors=.. p50_ms=.. p99_ms=.. p999_ms=.. (each command's latency: from its call to its
// outcome, the client's wait for room in its window not included)
//
// Threads: each client thread owns its orders; the repository is shared (it is thread-safe).
#include <jetsource/connection.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/repository.hpp>

#include <order_system/order.hpp>
#include <order_system/stream.hpp>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace order_system;

struct options {
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string mode = "async";
  std::string prefix = "x";
  int clients = 8;
  int commands = 30'000;  ///< in all, over the clients; rounded down to whole orders
  int window = 0;         ///< async: commands in flight per client at most; 0 = no bound
  double delay_ms = 0;    ///< before each command after a client's first
};

using clock_type = std::chrono::steady_clock;

// Command latencies of all clients (recorded from client threads and outcome callbacks).
class latencies {
 public:
  void add(clock_type::duration d) {
    std::lock_guard lock(m_);
    ms_.push_back(std::chrono::duration<double, std::milli>(d).count());
  }
  // The p-th percentile (0..100) in ms; 0 when nothing was recorded. Call after the run.
  double percentile(double p) {
    std::lock_guard lock(m_);
    if (ms_.empty()) return 0;
    std::sort(ms_.begin(), ms_.end());
    auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(ms_.size() - 1) + 0.5);
    return ms_[std::min(i, ms_.size() - 1)];
  }

 private:
  std::mutex m_;
  std::vector<double> ms_;
};

latencies measured;

// A client's count of commands in flight (async --window): submit() waits for room, the
// outcome's callback (a library thread) frees it.
class in_flight {
 public:
  explicit in_flight(int window) : window_(window) {}
  void submit() {
    std::unique_lock lock(m_);
    room_.wait(lock, [this] { return n_ < window_; });
    ++n_;
  }
  void done() {
    {
      std::lock_guard lock(m_);
      --n_;
    }
    room_.notify_one();
  }

 private:
  std::mutex m_;
  std::condition_variable room_;
  int n_ = 0;
  const int window_;
};

std::atomic<long> errors{0};
std::mutex shown_mutex;
int shown = 0;

void count_error(const jetsource::error& e) {
  errors.fetch_add(1);
  std::lock_guard lock(shown_mutex);
  if (shown++ < 3) fmt::print(stderr, "execute_orders: {}\n", e);
}

// Runs `orders` lifecycles for client `c`: execute(id, command) is called per command.
template <class Exec>
void run_client(int c, int orders, const std::string& prefix, Exec exec) {
  for (int i = 0; i < orders; ++i) {
    const auto id = fmt::format("{}-{}-{}", prefix, c, i);
    exec(id, create_order{fmt::format("c-{}", i % 50), {{"widget", 2, 250}, {"gadget", 1, 1000}}});
    exec(id, place_order{});
    exec(id, pay_order{1500});
  }
}

// --delay-ms: the pause before a client's next command (none before its first).
void pause_between(const options& o, bool& first) {
  if (!first && o.delay_ms > 0)
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(o.delay_ms));
  first = false;
}

double run(jetsource::repository<order>& repo, const options& o, int orders_per_client) {
  std::vector<std::thread> pool;
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < o.clients; ++c)
    pool.emplace_back([&, c] {
      bool first = true;
      if (o.mode == "sync")
        run_client(c, orders_per_client, o.prefix, [&](const std::string& id, auto command) {
          pause_between(o, first);
          const auto t = clock_type::now();
          auto r = repo.execute(id, std::move(command));
          measured.add(clock_type::now() - t);
          if (!r) count_error(r.error());
        });
      else {
        auto flight = std::make_shared<in_flight>(o.window > 0 ? o.window : INT_MAX);
        run_client(c, orders_per_client, o.prefix, [&](const std::string& id, auto command) {
          flight->submit();
          pause_between(o, first);
          const auto t = clock_type::now();
          auto r = repo.execute_async(id, std::move(command),
                                      [flight, t](jetsource::result<jetsource::executed> done) {
                                        measured.add(clock_type::now() - t);
                                        if (!done) count_error(done.error());
                                        flight->done();
                                      });
          if (!r) {
            count_error(r.error());
            flight->done();
          }
        });
      }
    });
  for (auto& t : pool) t.join();
  if (auto f = repo.flush(std::chrono::minutes{2}); !f) count_error(f.error());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"order commands through repository::execute[_async] from C clients"};
  app.add_option("--nats-url", o.nats_url, "the nats-server serve uses");
  app.add_option("--mode", o.mode, "async (execute_async) or sync (execute)")
      ->check(CLI::IsMember({"async", "sync"}));
  app.add_option("--clients", o.clients, "concurrent clients (threads)")->check(CLI::Range(1, 256));
  app.add_option("--commands", o.commands, "commands in all (3 per order)")
      ->check(CLI::Range(3, 10'000'000));
  app.add_option("--window", o.window,
                 "async: commands in flight per client at most (1: as an HTTP connection; 0: "
                 "no bound)")
      ->check(CLI::Range(0, 1'000'000));
  app.add_option("--prefix", o.prefix, "order id prefix (unique per run)");
  app.add_option("--delay-ms", o.delay_ms,
                 "each client's pause before each command after its first")
      ->check(CLI::Range(0.0, 60'000.0));
  CLI11_PARSE(app, argc, argv);

  jetsource::connection_options co;
  co.urls = {o.nats_url};
  auto conn = jetsource::connection::connect(co);
  if (!conn) {
    fmt::print(stderr, "execute_orders: {}\n", conn.error());
    return 1;
  }
  auto store = jetsource::event_store::open(*conn, orders_stream());
  if (!store) {
    fmt::print(stderr, "execute_orders: {}\n", store.error());
    return 1;
  }
  jetsource::repository<order> repo{*store};
  const int orders_per_client = std::max(1, o.commands / 3 / o.clients);
  const double seconds = run(repo, o, orders_per_client);
  const long commands = 3L * orders_per_client * o.clients;
  fmt::print(
      "execute_orders mode={} clients={} window={} commands={} seconds={:.3f} "
      "commands_per_s={:.0f} errors={} p50_ms={:.3f} p99_ms={:.3f} p999_ms={:.3f}\n",
      o.mode, o.clients, o.window, commands, seconds, static_cast<double>(commands) / seconds,
      errors.load(), measured.percentile(50), measured.percentile(99), measured.percentile(99.9));
  return errors.load() == 0 ? 0 : 1;
}
