// detail: the ack window and the applied mark of one consumer.
#include "ack_tracker.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace jetsource::detail {

void ack_tracker::delivered(std::uint64_t sequence, const ack_meta& meta) {
  if (prefix_.empty()) {
    prefix_ = meta.prefix;
    suffix_ = meta.suffix;
  }
  if (auto [it, added] = window_.try_emplace(sequence, delivery{meta.n});
      !added && it->second.stale)
    it->second = delivery{meta.n, it->second.committed};
  last_delivered_ = std::max(last_delivered_, sequence);
}

void ack_tracker::committed(std::uint64_t sequence) {
  if (auto it = window_.find(sequence); it != window_.end()) it->second.committed = true;
}

void ack_tracker::consumer_recreated() {
  for (auto& [seq, d] : window_) d.stale = true;
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
  while (!window_.empty() && window_.begin()->second.committed) {
    if (!window_.begin()->second.stale)
      to_ack_.emplace(window_.begin()->first, window_.begin()->second.n);
    window_.erase(window_.begin());
  }
  mark_ = std::max(mark_, window_.empty() ? last_delivered_ : window_.begin()->first - 1);
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
