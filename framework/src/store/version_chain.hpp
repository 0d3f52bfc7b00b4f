// detail: the check that the commits read before an aggregate's head lead to it.
#pragma once

#include "store/reads.hpp"
#include "wire/headers.hpp"

#include <nats/nats.h>

#include <cstddef>
#include <cstdint>

namespace jetsource::detail::store {

// What a replica hands over, held against the leader's head: each commit's version follows the
// one before (by its event count), and the last reaches the head's. nats-server 2.9.10 let a
// replica's log drift after leader kills (make test, 2026-12-03: reads through it returned 117
// commits twice and 144 at other sequences than stored, while the leader's log was whole).
class version_chain {
 public:
  version_chain(std::uint64_t after, std::uint64_t head_version, std::size_t head_events)
      : known_(after == 0),
        end_(head_events > 0 && head_version >= head_events ? head_version - head_events : 0),
        check_end_(head_events > 0) {}
  /// False (and broken) when `m` does not follow what was handed over.
  bool follows(natsMsg* m, std::uint64_t seq) {
    auto v = version_of(m, seq);
    const std::size_t events = detail::event_count(header(m, detail::hdr_events));
    const bool ok =
        v && seq > seq_ && (!known_ || (events > 0 ? *v == version_ + events : *v > version_));
    if (!ok) return !(broken_ = true);
    version_ = *v;
    seq_ = seq;
    known_ = true;
    return true;
  }
  /// The whole range was handed over: does it reach the head?
  /// (Nothing to hold it against when the range started after a snapshot and was empty.)
  bool complete() const { return !broken_ && (!check_end_ || !known_ || version_ == end_); }
  std::uint64_t last_sequence() const { return seq_; }
  bool broken() const { return broken_; }

 private:
  bool known_;  // version_ is the version before the next commit (0 before the first)
  std::uint64_t version_ = 0, seq_ = 0;
  std::uint64_t end_;
  bool check_end_;
  bool broken_ = false;
};

}  // namespace jetsource::detail::store
