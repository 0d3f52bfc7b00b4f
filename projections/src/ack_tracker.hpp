// detail: the ack window and the applied mark of one consumer: which deliveries are in flight,
// which are committed, the contiguous committed mark, and the cumulative ack that covers it.
// Pure code: no I/O, no clock, no threads (see tests/unit/ack_tracker_test.cpp).
//
// Thread-safety: none; one owner (the projector's fetcher thread).
#pragma once

#include "wire/ack_subject.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace jetsource::detail {

class ack_tracker {
 public:
  /// Every message at or below `mark` is committed already.
  explicit ack_tracker(std::uint64_t mark) noexcept : mark_(mark), last_delivered_(mark) {}

  /// A delivery handed to a worker, with its ack subject. A redelivery of a message that a
  /// recreated consumer made stale replaces the stale entry (acks name the new consumer's
  /// numbers); the first delivery teaches the ack subject's shape.
  void delivered(std::uint64_t sequence, const ack_meta& meta);
  /// A worker committed `sequence` (applied, skipped as a duplicate, or dead-lettered).
  void committed(std::uint64_t sequence);
  /// The consumer was recreated: what is in flight was delivered by the old one and is never
  /// named in an ack (the new consumer sends it again); the next delivery teaches the subject.
  void consumer_recreated();

  /// A cursor shared by several trackers (a reactor's partitions) delivered up to `sequence`
  /// without anything for this one: with nothing in flight, the mark may move up to it.
  void passed(std::uint64_t sequence) noexcept {
    last_delivered_ = std::max(last_delivered_, sequence);
  }
  /// Starts again from `mark` (which may be lower than the current one: a reactor's partition
  /// acquired again, its cursor rewound): forgets the window and what was to be acked.
  void reset(std::uint64_t mark);

  /// Drops the committed prefix of the window; returns the mark: every message at or below it is
  /// committed (the last delivered one when nothing is in flight).
  std::uint64_t advance();
  /// The cumulative ack (AckPolicy All) for the highest committed message at or below the mark,
  /// built from the numbers kept, once; nullopt when none is due.
  std::optional<std::string> take_ack();

  std::uint64_t mark() const noexcept { return mark_; }
  std::size_t in_flight() const noexcept { return window_.size(); }

 private:
  struct delivery {
    std::uint64_t sequence = 0;  // stream sequence
    ack_numbers n;
    bool committed = false;
    bool stale = false;  // delivered by a consumer since recreated
  };
  // The window, sorted by stream sequence: deliveries come in order, so a delivery is appended
  // and the committed prefix popped (no node per message, as a std::map had: issue 17 §3); a
  // redelivery out of order is inserted in its place.
  std::deque<delivery> window_;
  std::deque<delivery>::iterator find(std::uint64_t sequence);
  std::optional<std::pair<std::uint64_t, ack_numbers>> to_ack_;
  std::string prefix_, suffix_;  // of this consumer's ack subjects
  std::uint64_t mark_ = 0, last_delivered_ = 0;
};

}  // namespace jetsource::detail
