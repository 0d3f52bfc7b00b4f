// detail: W serial worker threads keyed by a string (an aggregate id): every item of one key
// runs on the same thread, in the order it was dispatched, while different keys run in parallel.
// Control tasks (dead-letter retries) run on a key's worker between two batches; drain() runs
// what was queued and posted, then joins.
//
// Thread-safety: dispatch(), post() and drain() may be called from any thread. Each worker's
// queue, controls and `closed` flag are guarded by that worker's mutex (no other lock is taken
// while holding it); run_batch runs on the worker's own thread with no lock held.
#pragma once

#include <jetsource/event_store.hpp>  // fnv1a32

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace jetsource::detail {

template <class Item>
class keyed_workers {
 public:
  /// Called on worker `index`'s thread with up to max_group items, oldest first.
  using run_batch = std::function<void(std::size_t index, std::vector<Item>& batch)>;

  keyed_workers(std::size_t count, std::size_t max_group, run_batch run)
      : max_group_(max_group), run_(std::move(run)) {
    for (std::size_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<worker>());
    for (std::size_t i = 0; i < count; ++i)
      workers_[i]->thread = std::thread([this, i] { loop(i); });
  }
  keyed_workers(const keyed_workers&) = delete;
  keyed_workers& operator=(const keyed_workers&) = delete;
  ~keyed_workers() { drain(); }

  std::size_t size() const noexcept { return workers_.size(); }
  std::size_t index_of(std::string_view key) const noexcept {
    return fnv1a32(key) % workers_.size();
  }

  void dispatch(std::string_view key, Item item) {
    auto& w = *workers_[index_of(key)];
    {
      std::lock_guard lk(w.mutex);
      w.queue.push_back(std::move(item));
    }
    w.wake.notify_one();
  }

  /// Runs `task` on the worker of `key` between batches. False, and the task is dropped, once
  /// drain() has begun (a task posted before always runs).
  bool post(std::string_view key, std::function<void()> task) {
    auto& w = *workers_[index_of(key)];
    {
      std::lock_guard lk(w.mutex);
      if (w.closed) return false;
      w.controls.push_back(std::move(task));
    }
    w.wake.notify_one();
    return true;
  }

  /// Runs every queued item and posted task, then joins the threads. Idempotent.
  void drain() {
    for (auto& w : workers_) {
      {
        std::lock_guard lk(w->mutex);
        w->closed = true;
      }
      w->wake.notify_all();
    }
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
  }

 private:
  struct worker {
    std::thread thread;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Item> queue;
    std::deque<std::function<void()>> controls;
    bool closed = false;  // drain(): no new tasks; finish the queue, then exit
  };

  void loop(std::size_t index) {
    auto& w = *workers_[index];
    std::vector<Item> batch;
    for (;;) {
      std::deque<std::function<void()>> controls;
      {
        std::unique_lock lk(w.mutex);
        w.wake.wait(lk, [&] { return !w.queue.empty() || !w.controls.empty() || w.closed; });
        controls.swap(w.controls);
        const std::size_t n = std::min(w.queue.size(), max_group_);
        batch.clear();
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(w.queue.front()));
          w.queue.pop_front();
        }
        if (batch.empty() && controls.empty() && w.closed) return;
      }
      for (auto& c : controls) c();
      if (!batch.empty()) run_(index, batch);
    }
  }

  const std::size_t max_group_;
  const run_batch run_;
  std::vector<std::unique_ptr<worker>> workers_;
};

}  // namespace jetsource::detail
