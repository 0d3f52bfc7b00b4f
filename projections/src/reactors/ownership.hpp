// detail: which partitions a reactor member holds, as its three kinds of threads need to know it
// (ADR 0014): the lease keeper acquires, renews, loses and releases leases; the cursor (fetcher
// thread) learns of each change between two deliveries and publishes each partition's
// checkpoint; the workers check the self-fence before each handler call.
//
// Thread-safety: every member function may be called from any thread; one mutex guards all the
// state (held for a few map operations only, never across a call out).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace jetsource::detail {

class ownership {
 public:
  using clock = std::chrono::steady_clock;

  /// What the cursor must apply (in this order) between two deliveries.
  struct change {
    enum class kind { acquired, lost, release } what;
    std::uint32_t partition = 0;
    std::uint64_t epoch = 0;
    std::uint64_t checkpoint = 0;  ///< acquired: where the tenure starts
  };
  /// The cursor's answer to a release: p's checkpoint once its in-flight events are settled.
  struct released {
    std::uint32_t partition = 0;
    std::uint64_t epoch = 0;
    std::uint64_t checkpoint = 0;
  };

  /// `fence`: how long after a renewal was sent the member may still act on it (lease - margin).
  ownership(std::uint32_t partitions, std::chrono::milliseconds fence)
      : fence_(fence), slots_(partitions) {}

  // -- the lease keeper ------------------------------------------------------------------------
  /// A lease won (`sent`: when the winning write was sent).
  void acquire(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint,
               clock::time_point sent);
  void renewed(std::uint32_t p, clock::time_point sent);
  /// A renewal refused: someone else holds p now. Stops handling at once.
  void lose(std::uint32_t p);
  /// p's target is another member: stop dispatching, settle, then answer with `released`.
  void release(std::uint32_t p);
  /// The checkpoint to write with the next renewal of p (the cursor's, else the acquired one).
  std::uint64_t checkpoint(std::uint32_t p) const;
  std::vector<released> take_released();

  // -- the cursor ------------------------------------------------------------------------------
  bool has_changes() const noexcept { return pending_.load(std::memory_order_acquire); }
  std::vector<change> take_changes();
  /// p's checkpoint in tenure `epoch` (ignored once the tenure is over).
  void publish(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint);
  void settled(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint);

  // -- the workers -----------------------------------------------------------------------------
  /// The self-fence: p is held in tenure `epoch` and its last successful renewal was sent less
  /// than `fence` ago.
  bool holds(std::uint32_t p, std::uint64_t epoch) const;
  /// Held in tenure `epoch`, fenced or not (a late renewal may still succeed).
  bool held(std::uint32_t p, std::uint64_t epoch) const;

  // -- anyone ----------------------------------------------------------------------------------
  std::vector<std::uint32_t> partitions() const;
  bool owns(std::uint32_t p) const;
  std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(slots_.size()); }

 private:
  struct slot {
    bool held = false;       // the keeper holds the lease
    bool releasing = false;  // handed back once settled
    std::uint64_t epoch = 0;
    std::uint64_t checkpoint = 0;
    clock::time_point renewal_sent{};
  };
  const std::chrono::milliseconds fence_;
  mutable std::mutex mutex_;
  std::vector<slot> slots_;
  std::deque<change> changes_;
  std::vector<released> released_;
  std::atomic<bool> pending_{false};
};

}  // namespace jetsource::detail
