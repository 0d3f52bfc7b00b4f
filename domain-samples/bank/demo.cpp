// jetsource-demo: a tour of the write side on an embedded nats-server (what `make demo` runs
// until the order-system sample exists). Opens accounts, runs concurrent commands through
// repository::execute, and shows conflicts, rejections, idempotent retries, snapshots and
// bad input, with the rates measured on the way.
#include <bank/account.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double per_second(std::size_t n, clock_type::time_point since) {
  return n / std::chrono::duration<double>(clock_type::now() - since).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jetsource write-side demo: bank accounts on JetStream"};
  std::string nats_url, data_dir = ".jetsource-demo";
  int accounts = 2000, commands = 20000, threads = 4;
  app.add_option("--nats-url", nats_url, "NATS server URL (default: an embedded nats-server)");
  app.add_option("--data-dir", data_dir, "where the embedded server keeps its store");
  app.add_option("--accounts", accounts, "accounts to open")->check(CLI::PositiveNumber);
  app.add_option("--commands", commands, "deposits/withdrawals to run")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "concurrent writers")->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  jetsource::connection_options options;
  if (!nats_url.empty()) options.urls = {nats_url};
  auto rt = jetsource::runtime::open(options, std::filesystem::path(data_dir) / "nats");
  if (!rt) {
    fmt::print(stderr, "cannot start: {}\n", rt.error());
    return 1;
  }
  fmt::print("1. server: {} ({})\n", rt->conn.connected_url(),
             rt->server
                 ? fmt::format("embedded, pid {}, store {}/nats", rt->server->pid(), data_dir)
             : nats_url.empty()
                 ? fmt::format("embedded, started by another process, store {}/nats", data_dir)
                 : std::string("external"));

  auto store = jetsource::event_store::open(rt->conn, {.stream = "BANK", .subject_prefix = "bank"});
  if (!store) {
    fmt::print(stderr, "cannot open the event store: {}\n", store.error());
    return 1;
  }
  auto first_seq = store->last_sequence().value_or(0);
  fmt::print("2. stream BANK ready (subjects bank.Account.<partition>.<id>), {} commits so far\n",
             first_seq);

  jetsource::repository<bank::account> repo{*store, {.snapshot_every = 50}};
  // Ids unique to this run, so running the demo twice adds to the same store.
  auto run = fmt::format("{:%H%M%S}", fmt::localtime(std::time(nullptr)));
  auto id = [&](int n) { return fmt::format("acc-{}-{}", run, n); };

  // 3. Open accounts: each open is one atomic commit holding AccountOpened + Deposited.
  auto t0 = clock_type::now();
  for (int i = 0; i < accounts; ++i) {
    auto r = repo.execute(id(i), bank::open_account{fmt::format("owner-{}", i % 97), 10'000});
    if (!r) {
      fmt::print(stderr, "open {} failed: {}\n", id(i), r.error());
      return 1;
    }
  }
  fmt::print("3. opened {} accounts (2 events per commit) at {:.0f} commands/s\n", accounts,
             per_second(accounts, t0));

  // 4. Concurrent commands from several threads, each with its own repository (as separate
  //    processes would be): a hot account sees conflicts, which are retried.
  std::atomic<int> accepted{0}, rejected{0}, retried{0}, failed{0};
  t0 = clock_type::now();
  std::vector<std::thread> writers;
  for (int w = 0; w < threads; ++w) {
    writers.emplace_back([&, w] {
      jetsource::repository<bank::account> own{*store, {.snapshot_every = 50}};
      for (int i = w; i < commands; i += threads) {
        auto target = i % 10 == 0 ? id(0) : id((i * 7919) % accounts);  // 10% on one hot account
        auto r = i % 3 == 0 ? own.execute(target, bank::withdraw{1 + i % 20'000})
                            : own.execute(target, bank::deposit{1 + i % 500, "demo"});
        if (r) {
          ++accepted;
          if (r->attempts > 1) ++retried;
        } else if (r.error().is(jetsource::errc::rejected)) {
          ++rejected;
        } else {
          ++failed;
          fmt::print(stderr, "command failed: {}\n", r.error());
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  fmt::print(
      "4. {} commands from {} threads at {:.0f} commands/s: {} accepted ({} needed a conflict "
      "retry), {} rejected by domain rules, {} failed\n",
      commands, threads, per_second(commands, t0), accepted.load(), retried.load(), rejected.load(),
      failed.load());

  // 5. Cold load (fresh repository, snapshot + tail) vs. full replay.
  jetsource::repository<bank::account> cold{*store, {.snapshot_every = 50}};
  jetsource::repository<bank::account> replay{*store};
  (void)store->flush();
  t0 = clock_type::now();
  auto hot = cold.load(id(0));
  auto cold_us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
  t0 = clock_type::now();
  auto hot_replayed = replay.load(id(0));
  auto replay_us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
  if (!hot || !hot_replayed) {
    fmt::print(stderr, "load failed: {}\n", hot ? hot_replayed.error() : hot.error());
    return 1;
  }
  fmt::print(
      "5. hot account {}: version {}, balance {:.2f}; cold load with snapshot {:.0f} us, full "
      "replay of {} events {:.0f} us, same state: {}\n",
      id(0), hot->version, hot->state.balance_cents() / 100.0, cold_us, hot_replayed->version,
      replay_us, hot->state.balance_cents() == hot_replayed->state.balance_cents() ? "yes" : "NO");

  // 6. Idempotent retry: the same command id lands once.
  auto once = repo.execute(id(1), bank::deposit{1, "retry"}, {.command_id = "demo-" + run});
  auto again = repo.execute(id(1), bank::deposit{1, "retry"}, {.command_id = "demo-" + run});
  if (once && again)
    fmt::print(
        "6. same command id twice: first {}, second {} (sequence {} both times)\n",
        once->status == jetsource::append_status::appended ? "appended" : "already appended",
        again->status == jetsource::append_status::appended ? "appended" : "already appended",
        again->sequence);

  // 7. Bad input gets a clear error and writes nothing.
  auto bad_id = repo.execute("acc.with.dots", bank::open_account{"x"});
  auto overdraw = repo.execute(id(2), bank::withdraw{1'000'000'000});
  fmt::print("7. bad id -> {}\n   overdraw -> {}\n",
             bad_id ? "accepted?!" : jetsource::to_string(bad_id.error()),
             overdraw ? "accepted?!" : jetsource::to_string(overdraw.error()));

  auto last = store->last_sequence().value_or(0);
  fmt::print("8. stream BANK now holds {} commits ({} from this run). Stopping{}.\n", last,
             last - first_seq, rt->server ? " the embedded server" : "");
  return failed.load() == 0 ? 0 : 1;
}
