// detail: the ack window and the applied mark of one consumer.
#include "ack_tracker.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace jetsource::detail {

std::deque<ack_tracker::delivery>::iterator ack_tracker::find(std::uint64_t sequence) {
  // A consumer of the whole stream is delivered consecutive sequences: the window is then
  // dense and the place of `sequence` is its distance from the front (checked; else searched).
  if (!window_.empty() && sequence >= window_.front().sequence) {
    const auto at = sequence - window_.front().sequence;
    if (at < window_.size() && window_[at].sequence == sequence)
      return window_.begin() + static_cast<std::ptrdiff_t>(at);
  }
  return std::lower_bound(window_.begin(), window_.end(), sequence,
                          [](const delivery& d, std::uint64_t s) { return d.sequence < s; });
}

void ack_tracker::delivered(std::uint64_t sequence, const ack_meta& meta) {
  if (prefix_.empty()) {
    prefix_ = meta.prefix;
    suffix_ = meta.suffix;
  }
  if (window_.empty() || window_.back().sequence < sequence) {
    window_.push_back(delivery{sequence, meta.n});
  } else if (auto it = find(sequence); it == window_.end() || it->sequence != sequence) {
    window_.insert(it, delivery{sequence, meta.n});
  } else if (it->stale) {
    *it = delivery{sequence, meta.n, it->committed};
  }
  last_delivered_ = std::max(last_delivered_, sequence);
}

void ack_tracker::committed(std::uint64_t sequence) {
  if (auto it = find(sequence); it != window_.end() && it->sequence == sequence)
    it->committed = true;
}

void ack_tracker::consumer_recreated() {
  for (auto& d : window_) d.stale = true;
  to_ack_.reset();
  prefix_.clear();
  suffix_.clear();
}

void ack_tracker::reset(std::uint64_t mark) {
  window_.clear();
  to_ack_.reset();
  mark_ = last_delivered_ = mark;
}

std::uint64_t ack_tracker::advance() {
  while (!window_.empty() && window_.front().committed) {
    if (!window_.front().stale) to_ack_.emplace(window_.front().sequence, window_.front().n);
    window_.pop_front();
  }
  mark_ = std::max(mark_, window_.empty() ? last_delivered_ : window_.front().sequence - 1);
  return mark_;
}

std::optional<std::string> ack_tracker::take_ack() {
  if (!to_ack_ || prefix_.empty()) return std::nullopt;
  const auto& [sequence, n] = *to_ack_;
  auto subject = fmt::format("{}{}.{}.{}.{}.{}{}", prefix_, n.delivered, sequence,
                             n.consumer_sequence, n.timestamp, n.pending, suffix_);
  to_ack_.reset();
  return subject;
}

}  // namespace jetsource::detail
