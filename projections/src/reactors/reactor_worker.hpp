// detail: one reactor worker's aggregate lines (ADR 0014, "Handling, retries, parking"). Each
// aggregate the worker sees has a line: its commits in stream order, handled one at a time. A
// failing handler is retried in process after a backoff (a delayed task on the same worker;
// the aggregate's later commits wait in its line, other aggregates flow); after the last attempt
// the aggregate is parked: a `park.<p>.<Type>.<id>` record is written before the commit counts
// as settled, and its later commits settle unhandled. A retry or skip request re-reads the
// aggregate's commits from the parked one and handles them, then deletes the record by CAS.
//
// Thread-safety: none; an aggregate_lines belongs to its worker's thread (everything reaches it
// as a batch or a posted task of that worker).
#pragma once

#include "applier.hpp"  // key_map, aggregate_key
#include "reactors/member_state.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>

namespace jetsource::detail {

class aggregate_lines {
 public:
  explicit aggregate_lines(reactor_member_state& s) : s_(s), jitter_(std::random_device{}()) {}

  void take(reactor_item item);
  /// The backoff of `key`'s line (generation `gen`) is over: attempt again.
  void resume(const std::string& key, std::uint64_t gen);
  void load_parked(const park_value& rec, std::uint64_t revision, std::uint64_t epoch);
  void serve_request(const park_value& rec, std::uint64_t revision, std::uint64_t epoch);
  /// Queue mode: handles one delivery with its retries (no order, no parking), then acks it
  /// or writes its dead record (queue_mode.cpp).
  void handle_queued(reactor_item& item);
  /// Reports the waiting items of lines of partition `p` (all when nullopt) as abandoned and
  /// forgets those lines.
  void abandon(std::optional<std::uint32_t> p);

 private:
  struct line {
    std::uint32_t partition = 0;
    std::uint64_t epoch = 0;
    std::string type, id;
    std::uint64_t last_version = 0;    // handled in this tenure (0: none seen)
    std::deque<reactor_item> waiting;  // front: the commit being handled
    int attempt = 0;                   // failed calls of the front commit
    bool retrying = false;             // a resume() is scheduled
    std::uint64_t gen = 0;             // of the scheduled resume
    std::string first_failed_at;
    bool parked = false;
    std::uint64_t park_revision = 0;  // of the park record (parked, or being resolved)
    bool resolving = false;           // a retry/skip runs: delete the record once drained
    bool abandoned = false;           // its waiting commits were given up: so are its later ones
  };
  enum class outcome { settled, retry_later, parked };
  struct failure {
    error why;
    std::uint64_t version = 0;
    std::string event_type;
  };

  line& line_for(const std::string& key, std::string_view type, std::string_view id,
                 std::uint32_t p, std::uint64_t epoch);
  void pump(const std::string& key, line& l);
  void schedule(const std::string& key, line& l, std::string_view id,
                std::chrono::milliseconds delay);
  /// False when the line's partition is no longer held in its tenure (its commits were
  /// abandoned) or the self-fence is up for now (a resume is scheduled).
  bool may_run(const std::string& key, line& l, std::string_view id);
  outcome attempt(const std::string& key, line& l, reactor_item& item);
  /// Runs the handlers of the commit's events above l.last_version.
  std::optional<failure> run_events(line& l, const reactor_item& item);
  result<void> write_park(const std::string& key, line& l, const reactor_item& item,
                          const failure& f);
  void settle(const reactor_item& item, bool settled);
  std::chrono::milliseconds backoff(int attempt);

  reactor_member_state& s_;
  key_map<line> lines_;
  std::minstd_rand jitter_;
  std::uint64_t next_gen_ = 1;
};

}  // namespace jetsource::detail
