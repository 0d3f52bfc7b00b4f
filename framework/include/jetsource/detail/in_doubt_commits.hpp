// jetsource: detail — commits whose outcome is unknown, kept by their command id.
//
// Under the commit-slot scheme (docs/adr/0015) a command re-run with its command id after its
// commit landed unacknowledged would decide on a newer state, get a new slot and land again
// when another command on the aggregate landed in between. The repository keeps each such
// commit (an append that ended in a timeout or a lost connection) here; a re-run of the same
// command id in the same process first sends that exact commit again, which the stream tells
// apart: duplicate or found after its expectation = it landed (already_appended), stored now =
// it lands once, conflict = it never landed (decide anew).
//
// Threads: any; every member function takes the mutex.
#pragma once

#include <jetsource/event_store.hpp>

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace jetsource::detail {

class in_doubt_commits {
 public:
  /// At most `capacity` commits are kept; the oldest goes first (the stream's duplicate window
  /// bounds how long a re-send can be told apart anyway).
  explicit in_doubt_commits(std::size_t capacity = 1024) : capacity_(capacity) {}

  /// Remembers `c` (keyed by its commit id, the command id) as in doubt.
  void put(const commit& c) {
    std::lock_guard lock(mutex_);
    if (commits_.insert_or_assign(c.commit_id, c).second) order_.push_back(c.commit_id);
    while (commits_.size() > capacity_ && !order_.empty()) {
      commits_.erase(order_.front());
      order_.pop_front();
    }
  }

  /// The commit in doubt for `command_id`, taken out (nullopt: none).
  std::optional<commit> take(const std::string& command_id) {
    std::lock_guard lock(mutex_);
    auto it = commits_.find(command_id);
    if (it == commits_.end()) return std::nullopt;
    commit c = std::move(it->second);
    commits_.erase(it);
    std::erase(order_, command_id);
    return c;
  }

 private:
  std::mutex mutex_;
  std::size_t capacity_;
  std::unordered_map<std::string, commit> commits_;
  std::deque<std::string> order_;  // insertion order, for the bound
};

}  // namespace jetsource::detail
