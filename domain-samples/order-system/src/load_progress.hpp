// `order-system load`: what a run has done so far (shared by its writers), the reasons of its
// failures, and the watch that shows progress and gives up when the server stops answering.
//
// Thread-safety: load_stats and failure_log are shared by the writers and the watch; a
// load_watch belongs to the thread that runs the load.
//
//   load_stats stats;  failure_log failures;  std::atomic<bool> stop{false};
//   load_watch watch{stats, 2000, conn, std::chrono::seconds{30}, stop};
//   ... writers call stats.answered() / failures.record(...) ...;  watch.finish();
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/result.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace order_system::cli {

/// Counters of a load run. A command with an errc::timeout has an unknown outcome (its commit
/// may have landed): it is counted in `unknown`, not in `failed` (surely not stored).
struct load_stats {
  std::atomic<long> orders{0}, commands{0}, rejected{0}, failed{0}, unknown{0};
  std::atomic<std::int64_t> last_answer{now()};  ///< steady clock, ns: the server's last answer
  double seconds = 0;

  void answered() noexcept { last_answer = now(); }
  static std::int64_t now() noexcept {
    return std::chrono::steady_clock::now().time_since_epoch().count();
  }
};

/// The failures of a run by kind (error code): counted; the first of each kind is printed at
/// once on stderr, the last is kept for the summary.
class failure_log {
 public:
  void record(const std::string& order_id, const jetsource::error& e);
  /// "timeout x 12 (outcome unknown; last: ...); unreachable x 1 (last: ...)", or "".
  std::string summary() const;
  /// The last failure ("" if none).
  std::string last() const;

 private:
  struct kind {
    long count = 0;
    std::string last;
  };
  mutable std::mutex mutex_;
  std::map<jetsource::errc, kind> kinds_;
  std::string last_;
};

/// Watches a run from its own thread: a progress line on stderr every `every`, and `stop` set
/// when the server has not answered any command for `give_up_after`.
class load_watch {
 public:
  load_watch(const load_stats& stats, long total_orders, const jetsource::connection& conn,
             std::chrono::seconds give_up_after, std::atomic<bool>& stop,
             std::chrono::seconds every = std::chrono::seconds{5});
  ~load_watch();  ///< finish()
  load_watch(const load_watch&) = delete;
  load_watch& operator=(const load_watch&) = delete;

  /// Ends the watch (after the writers are done).
  void finish();
  /// Why the run was stopped early ("" if it was not): how long the server was silent.
  const std::string& gave_up() const noexcept { return gave_up_; }

 private:
  void run();
  std::string progress() const;
  std::string server_state() const;

  const load_stats& stats_;
  long total_;
  const jetsource::connection& conn_;
  std::chrono::seconds give_up_after_, every_;
  std::atomic<bool>& stop_;
  std::atomic<bool> done_{false};
  std::string gave_up_;
  std::thread thread_;
};

}  // namespace order_system::cli
