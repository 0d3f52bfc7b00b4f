// detail: the check that the commits read before an aggregate's head lead to it.
#pragma once

#include "store/ids.hpp"
#include "store/reads.hpp"
#include "wire/headers.hpp"

#include <nats/nats.h>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace jetsource::detail::store {

/// A commit's Nats-Expected-Last-Subject-Sequence: the sequence of the aggregate's commit before
/// it, as the stream leader checked it (nullopt: the writer sent none, or not a number).
inline std::optional<std::uint64_t> expected_previous(natsMsg* m) {
  const std::string text = header(m, detail::hdr_expected_subject_seq);
  if (text.empty()) return std::nullopt;
  auto n = parse_u64(text);
  return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
}

// What a replica hands over, held against the leader's head: each commit's version follows the
// one before (by its event count), and the last reaches the head's; each commit's expectation
// (Nats-Expected-Last-Subject-Sequence, stored with it) names the sequence at which the commit
// before it was handed over, and the head's names the last one. nats-server 2.9.10 let a
// replica's log drift after leader kills (make test, 2026-12-03: reads through it returned 117
// commits twice and 144 at other sequences than stored, while the leader's log was whole; on
// 2026-12-04, 1,079 commits one sequence off with their versions in order). A commit's sequence
// is confirmed only by the commit after it (or the head): range_reads.cpp holds each back until
// then.
class version_chain {
 public:
  /// `after`: the range starts after this sequence (0: at the aggregate's first commit). The
  /// head's version, event count and expectation (nullopt: none stored).
  version_chain(std::uint64_t after, std::uint64_t head_version, std::size_t head_events,
                std::optional<std::uint64_t> head_expects = std::nullopt)
      : known_(after == 0),
        end_(head_events > 0 && head_version >= head_events ? head_version - head_events : 0),
        check_end_(head_events > 0),
        head_expects_(head_expects) {}
  /// False (and broken) when `m` does not follow what was handed over.
  bool follows(natsMsg* m, std::uint64_t seq) {
    auto v = version_of(m, seq);
    const std::size_t events = detail::event_count(header(m, detail::hdr_events));
    const auto expects = expected_previous(m);
    const bool ok = v && seq > seq_ &&
                    (!known_ || ((events > 0 ? *v == version_ + events : *v > version_) &&
                                 (!expects || *expects == seq_)));
    if (!ok) return !(broken_ = true);
    version_ = *v;
    seq_ = seq;
    known_ = true;
    return true;
  }
  /// The whole range was handed over: does it reach the head, and does the head's expectation
  /// name the last commit's sequence? (Nothing to hold it against when the range started after a
  /// snapshot and was empty.)
  bool complete() const {
    return !broken_ && (!known_ || ((!check_end_ || version_ == end_) &&
                                    (!head_expects_ || *head_expects_ == seq_)));
  }
  std::uint64_t last_sequence() const { return seq_; }
  bool broken() const { return broken_; }

 private:
  bool known_;  // version_ and seq_ are those of the commit before the next (0, 0 before the first)
  std::uint64_t version_ = 0, seq_ = 0;
  std::uint64_t end_;
  bool check_end_;
  std::optional<std::uint64_t> head_expects_;
  bool broken_ = false;
};

}  // namespace jetsource::detail::store
