// `order-system load`: progress, failure reasons and giving up (see load_progress.hpp).
#include "load_progress.hpp"

#include <fmt/format.h>

namespace order_system::cli {

void failure_log::record(const std::string& order_id, const jetsource::error& e) {
  auto text = fmt::format("order {}: {}", order_id, jetsource::to_string(e));
  std::lock_guard lock(mutex_);
  auto& k = kinds_[e.code];
  if (k.count++ == 0)
    fmt::print(stderr, "load: {}{} (further ones are counted)\n", text,
               e.is(jetsource::errc::timeout) ? " (outcome unknown: it may have been stored)" : "");
  k.last = text;
  last_ = std::move(text);
}

std::string failure_log::summary() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [code, k] : kinds_)
    out +=
        fmt::format("{}{} x {} ({}last: {})", out.empty() ? "" : "; ", jetsource::to_string(code),
                    k.count, code == jetsource::errc::timeout ? "outcome unknown; " : "", k.last);
  return out;
}

std::string failure_log::last() const {
  std::lock_guard lock(mutex_);
  return last_;
}

load_watch::load_watch(const load_stats& stats, long total_orders,
                       const jetsource::connection& conn, std::chrono::seconds give_up_after,
                       std::atomic<bool>& stop, std::chrono::seconds every)
    : stats_(stats),
      total_(total_orders),
      conn_(conn),
      give_up_after_(give_up_after),
      every_(every),
      stop_(stop),
      thread_([this] { run(); }) {}

load_watch::~load_watch() {
  finish();
}

void load_watch::finish() {
  done_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string load_watch::server_state() const {
  auto silent = std::chrono::nanoseconds{load_stats::now() - stats_.last_answer.load()};
  auto s = std::chrono::duration_cast<std::chrono::seconds>(silent).count();
  return fmt::format("last answer from the server {} s ago; {}", s,
                     conn_.connected() ? "connected" : "disconnected, reconnecting");
}

std::string load_watch::progress() const {
  return fmt::format("{}/{} orders, {} commands, {} rejected, {} failed, {} outcome unknown",
                     stats_.orders.load(), total_, stats_.commands.load(), stats_.rejected.load(),
                     stats_.failed.load(), stats_.unknown.load());
}

void load_watch::run() {
  using namespace std::chrono;
  auto next = steady_clock::now() + every_;
  while (!done_) {
    std::this_thread::sleep_for(milliseconds{100});
    auto silent = nanoseconds{load_stats::now() - stats_.last_answer.load()};
    if (gave_up_.empty() && silent > give_up_after_) {
      gave_up_ = fmt::format("gave up after {} s without an answer from the server ({})",
                             give_up_after_.count(),
                             conn_.connected() ? "connected" : "disconnected, reconnecting");
      fmt::print(stderr,
                 "load: giving up: no answer from the server for {} s; waiting for the commands "
                 "in flight\n",
                 give_up_after_.count());
      stop_ = true;
    }
    if (steady_clock::now() >= next) {
      next += every_;
      fmt::print(stderr, "load: {}; {}\n", progress(), server_state());
    }
  }
}

}  // namespace order_system::cli
