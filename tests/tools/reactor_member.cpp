// A reactor member process for the group tests (killed with SIGKILL, added mid-way): runs the
// "audit" reactor over the bank accounts of stream TEST until SIGTERM. Its handler appends one
// line per event to --out: "<instance> <type> <id> <version> <sequence> <epoch> <realtime ns>",
// with one write(2) on an O_APPEND file, so that several processes can share the file.
//   jetsource-test-reactor --nats-url URL[,URL...] --out FILE [--instance NAME] [--lease-ms MS]
//                          [--queue] [--delay-us US] [--workers N]
// It prints "started <instance>" on stdout once the member runs.
#include <jetsource/projector.hpp>  // block_termination_signals, wait_for_termination
#include <jetsource/reactor.hpp>

#include <bank/account.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

namespace {

int out_fd = -1;
int delay_us = 0;

}  // namespace

int main(int argc, char** argv) {
  jetsource::block_termination_signals();
  std::string url, out, instance;
  int lease_ms = 1500, workers = 4;
  bool queue = false;
  CLI::App app{"reactor member (test tool)"};
  app.add_option("--nats-url", url)->required();
  app.add_option("--out", out)->required();
  app.add_option("--instance", instance)->required();
  app.add_option("--lease-ms", lease_ms);
  app.add_option("--workers", workers);
  app.add_option("--delay-us", delay_us, "each handler call sleeps this long");
  app.add_flag("--queue", queue);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  // Several members log to one test's stderr: each line says whose it is.
  spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [{}] [%l] %v", instance));
  out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out_fd < 0) {
    std::perror(out.c_str());
    return 1;
  }
  jetsource::connection_options co;
  for (std::size_t at = 0; at <= url.size();) {  // a comma list: a cluster's nodes
    auto end = std::min(url.find(',', at), url.size());
    if (end > at) co.urls.push_back(url.substr(at, end - at));
    at = end + 1;
  }
  co.max_reconnects = -1;
  auto conn = jetsource::connection::connect(co);
  if (!conn) {
    spdlog::error("{}", conn.error());
    return 1;
  }
  std::string me;  // the instance name, once known
  auto line = [&me](jetsource::reaction_context& cx) -> jetsource::result<void> {
    if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auto text = fmt::format("{} {} {} {} {} {} {}\n", me, cx.aggregate_type(), cx.aggregate_id(),
                            cx.version(), cx.sequence(), cx.epoch(), now);
    if (::write(out_fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      return jetsource::error{jetsource::errc::io, "short write"};
    return jetsource::success();
  };
  auto r = jetsource::reactor("audit")
               .follow("test.Account.>")
               .on<bank::account_opened>([&](auto& cx, const auto&) { return line(cx); })
               .on<bank::deposited>([&](auto& cx, const auto&) { return line(cx); })
               .on<bank::withdrawn>([&](auto& cx, const auto&) { return line(cx); })
               .on<bank::account_closed>([&](auto& cx, const auto&) { return line(cx); });
  jetsource::reactor_options o;
  o.stream = "TEST";
  o.instance = instance;
  o.lease = std::chrono::milliseconds(lease_ms);
  o.workers = workers;
  o.mode = queue ? jetsource::delivery::queue : jetsource::delivery::ordered;
  o.queue_ack_wait = std::chrono::milliseconds(2000);
  o.metrics = nullptr;
  me = instance;
  auto m = jetsource::reactor_member::start(*conn, r, o);
  if (!m) {
    spdlog::error("{}", m.error());
    return 1;
  }
  std::printf("started %s\n", m->instance().c_str());
  std::fflush(stdout);
  jetsource::wait_for_termination();
  if (auto stopped = m->stop(); !stopped) {
    spdlog::error("{}", stopped.error());
    return 1;
  }
  ::close(out_fd);
  return 0;
}
