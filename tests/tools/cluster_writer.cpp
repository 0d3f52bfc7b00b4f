// A writer process for the cluster fault test: deposits 1 cent at a time into random accounts
// of stream BANK (read-decide-append through the repository), every 10th into "counter", for
// --seconds, while the test kills and stops nodes. A command that fails is re-run with the same
// command id until it lands or --give-up-after passes. One line per command on --out:
//   <command id> <account> appended|already_appended <sequence> <version> <attempts>
//   <command id> <account> unknown <errc>      (never answered: it may or may not have landed)
//   <command id> <account> rejected <reason>
//
//   jetsource-test-cluster-writer --urls nats://..,nats://.. --writer 3 --accounts 1000
//       --seconds 20 --out w3.log [--scheme automatic|subject_sequence|commit_slot]
#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start < s.size();) {
    auto comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

jetsource::concurrency_scheme scheme_of(const std::string& s) {
  if (s == "subject_sequence") return jetsource::concurrency_scheme::subject_sequence;
  if (s == "commit_slot") return jetsource::concurrency_scheme::commit_slot;
  return jetsource::concurrency_scheme::automatic;
}

}  // namespace

int main(int argc, char** argv) {
  std::string urls, out_path, scheme = "automatic";
  int writer = 0, accounts = 1000, seconds = 20, give_up_after = 60;
  CLI::App app{"cluster fault test writer (test tool)"};
  app.add_option("--urls", urls)->required();
  app.add_option("--writer", writer)->required();
  app.add_option("--accounts", accounts);
  app.add_option("--seconds", seconds);
  app.add_option("--give-up-after", give_up_after);
  app.add_option("--out", out_path)->required();
  app.add_option("--scheme", scheme);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::err);

  std::FILE* out = std::fopen(out_path.c_str(), "w");
  if (!out) return 1;
  jetsource::connection_options co;
  co.urls = split(urls);
  co.name = fmt::format("writer-{}", writer);
  co.reconnect_wait = std::chrono::milliseconds{100};
  co.retry_on_failed_connect = true;
  auto conn = jetsource::connection::connect(co);
  if (!conn) {
    fmt::print(stderr, "connect: {}\n", conn.error());
    return 1;
  }
  jetsource::store_options so{.stream = "BANK", .subject_prefix = "bank", .replicas = 3};
  so.ack_timeout = std::chrono::milliseconds{2000};
  so.concurrency = scheme_of(scheme);
  std::optional<jetsource::event_store> store;
  for (int i = 0; i < 100 && !store; ++i) {  // the stream may be moving to a new leader
    auto s = jetsource::event_store::open(*conn, so);
    if (s)
      store.emplace(std::move(s).value());
    else
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
  }
  if (!store) return 1;
  jetsource::repository<bank::account> repo{*store};

  std::mt19937 rng{static_cast<unsigned>(writer * 7919 + 17)};
  std::uniform_int_distribution<int> pick(0, accounts - 1);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds{seconds};
  for (int n = 0; std::chrono::steady_clock::now() < end; ++n) {
    const std::string id = n % 10 == 0 ? std::string("counter") : fmt::format("acct-{}", pick(rng));
    const std::string cmd = fmt::format("w{}-{}", writer, n);
    jetsource::command_context ctx{.command_id = cmd};
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{give_up_after};
    std::string line;
    for (;;) {
      auto r = repo.execute(id, bank::deposit{1, cmd}, ctx);
      if (r) {
        line = fmt::format(
            "{} {} {} {} {} {}", cmd, id,
            r->status == jetsource::append_status::appended ? "appended" : "already_appended",
            r->sequence, r->version, r->attempts);
        break;
      }
      if (r.error().is(bank::account_error::not_open)) {  // first use: open it (one wins)
        (void)repo.execute(id, bank::open_account{"test", 0});
        continue;
      }
      if (r.error().rejection) {
        line = fmt::format("{} {} rejected {}", cmd, id, jetsource::to_string(r.error().code));
        break;
      }
      if (std::chrono::steady_clock::now() >= give_up) {
        line = fmt::format("{} {} unknown {}", cmd, id, jetsource::to_string(r.error().code));
        break;
      }
      repo.forget(id);
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    std::fputs((line + "\n").c_str(), out);
    std::fflush(out);
  }
  std::fclose(out);
  return 0;
}
