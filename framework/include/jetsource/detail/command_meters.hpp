// detail: what a repository records per command (see jetsource/metrics.hpp): its outcome, and
// how long each append took, in series looked up once per repository.
#pragma once

#include <jetsource/metrics.hpp>

#include <array>
#include <chrono>
#include <string_view>

namespace jetsource::detail {

/// Values of the `outcome` label of jetsource_commands_total.
enum class command_outcome { appended, already_appended, conflict_retried, rejected, failed };

/// Thread-safety: immutable after construction; recording is atomic.
class command_meters {
 public:
  /// No registry: records nothing (and costs one branch per command).
  command_meters(metrics::registry* r, std::string_view aggregate_type);

  bool on() const noexcept { return append_ != nullptr; }
  void count(command_outcome o) noexcept {
    if (auto* c = outcomes_[static_cast<std::size_t>(o)]) c->inc();
  }
  void append_took(std::chrono::steady_clock::duration d) noexcept {
    if (append_) append_->observe(d);
  }

 private:
  std::array<metrics::counter*, 5> outcomes_{};
  metrics::histogram* append_ = nullptr;
};

}  // namespace jetsource::detail
