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

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
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
  /// Queue mode: handles one delivery (no order, no parking), then acks it or writes its dead
  /// record; a failed attempt is retried after a backoff as a delayed task of this worker, so
  /// that other deliveries flow meanwhile (queue_mode.cpp).
  void handle_queued(reactor_item& item);
  /// Reports the waiting items of lines of partition `p` (all when nullopt) as abandoned and
  /// forgets those lines; with nullopt also the queue-mode deliveries waiting for a retry.
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
  /// Queue mode: a delivery between two attempts.
  struct queued_delivery {
    reactor_item item;
    line l;  // its attempts and the events of the commit already handled
    std::chrono::steady_clock::time_point due, last_progress;  // next attempt, last +WPI
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
  reaction_context context_of(const reactor_item& item, std::size_t index, std::uint64_t version,
                              int attempt);
  /// Runs the handlers of the commit's events above l.last_version.
  std::optional<failure> run_events(line& l, const reactor_item& item);
  result<void> write_park(const std::string& key, line& l, const reactor_item& item,
                          const failure& f);
  void settle(const reactor_item& item, bool settled);
  std::chrono::milliseconds backoff(int attempt);
  /// Queue mode: one attempt of q; true when the delivery is done with (acked, or left to
  /// redelivery), false when it waits for q.due.
  bool attempt_queued(queued_delivery& q);
  /// Queue mode: wakes the delivery `sequence` at its due time, or earlier to send +WPI.
  void schedule_queued(std::uint64_t sequence);
  void resume_queued(std::uint64_t sequence);
  void abandon_queued();

  reactor_member_state& s_;
  key_map<line> lines_;
  std::map<std::uint64_t, queued_delivery> queued_;  // queue mode, by stream sequence
  std::minstd_rand jitter_;
  std::uint64_t next_gen_ = 1;
};

}  // namespace jetsource::detail
