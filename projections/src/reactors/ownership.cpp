// detail: which partitions a reactor member holds (see ownership.hpp).
#include "reactors/ownership.hpp"

namespace jetsource::detail {

void ownership::acquire(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint,
                        clock::time_point sent) {
  std::lock_guard lk(mutex_);
  slots_[p] = slot{true, false, epoch, checkpoint, sent};
  changes_.push_back({change::kind::acquired, p, epoch, checkpoint});
  pending_.store(true, std::memory_order_release);
}

void ownership::renewed(std::uint32_t p, clock::time_point sent) {
  std::lock_guard lk(mutex_);
  if (slots_[p].held) slots_[p].renewal_sent = sent;
}

void ownership::lose(std::uint32_t p) {
  std::lock_guard lk(mutex_);
  if (!slots_[p].held) return;
  slots_[p].held = false;
  slots_[p].releasing = false;
  changes_.push_back({change::kind::lost, p, slots_[p].epoch, 0});
  pending_.store(true, std::memory_order_release);
}

void ownership::release(std::uint32_t p) {
  std::lock_guard lk(mutex_);
  if (!slots_[p].held || slots_[p].releasing) return;
  slots_[p].releasing = true;
  changes_.push_back({change::kind::release, p, slots_[p].epoch, 0});
  pending_.store(true, std::memory_order_release);
}

std::uint64_t ownership::checkpoint(std::uint32_t p) const {
  std::lock_guard lk(mutex_);
  return slots_[p].checkpoint;
}

std::vector<ownership::released> ownership::take_released() {
  std::lock_guard lk(mutex_);
  std::vector<released> out;
  out.swap(released_);
  return out;
}

std::vector<ownership::change> ownership::take_changes() {
  std::lock_guard lk(mutex_);
  std::vector<change> out(changes_.begin(), changes_.end());
  changes_.clear();
  pending_.store(false, std::memory_order_release);
  return out;
}

void ownership::publish(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint) {
  std::lock_guard lk(mutex_);
  auto& s = slots_[p];
  if (s.held && s.epoch == epoch && checkpoint > s.checkpoint) s.checkpoint = checkpoint;
}

void ownership::settled(std::uint32_t p, std::uint64_t epoch, std::uint64_t checkpoint) {
  std::lock_guard lk(mutex_);
  auto& s = slots_[p];
  if (!s.held || s.epoch != epoch) return;
  if (checkpoint > s.checkpoint) s.checkpoint = checkpoint;
  released_.push_back({p, epoch, s.checkpoint});
}

bool ownership::holds(std::uint32_t p, std::uint64_t epoch) const {
  std::lock_guard lk(mutex_);
  const auto& s = slots_[p];
  // A partition being released is still held: its dispatched events are handled before it goes.
  return s.held && s.epoch == epoch && clock::now() - s.renewal_sent < fence_;
}

bool ownership::held(std::uint32_t p, std::uint64_t epoch) const {
  std::lock_guard lk(mutex_);
  return slots_[p].held && slots_[p].epoch == epoch;
}

std::vector<std::uint32_t> ownership::partitions() const {
  std::lock_guard lk(mutex_);
  std::vector<std::uint32_t> out;
  for (std::uint32_t p = 0; p < slots_.size(); ++p)
    if (slots_[p].held) out.push_back(p);
  return out;
}

bool ownership::owns(std::uint32_t p) const {
  std::lock_guard lk(mutex_);
  return slots_[p].held;
}

}  // namespace jetsource::detail
