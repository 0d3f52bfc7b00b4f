// detail: W serial worker threads keyed by a string (an aggregate id): every item of one key
// runs on the same thread, in the order it was dispatched, while different keys run in parallel.
// Control tasks (dead-letter retries) run on a key's worker between two batches, at once or after
// a delay (a reactor's retry backoff); drain() runs what was queued and posted (delayed tasks not
// yet due are dropped), then joins.
//
// Thread-safety: dispatch(), post() and drain() may be called from any thread. Each worker's
// queue, controls, timers, `closed` and `running` flags are guarded by that worker's mutex (no
// other lock is taken while holding it); run_batch runs with no lock held, on the worker's own
// thread or, through run_here(), on the caller's while the worker is idle and held back (one
// batch of a worker at a time either way).
#pragma once

#include "thread_name.hpp"

#include <jetsource/event_store.hpp>  // fnv1a32

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace jetsource::detail {

template <class Item>
class keyed_workers {
 public:
  /// Called on worker `index`'s thread with up to max_group items, oldest first.
  using run_batch = std::function<void(std::size_t index, std::vector<Item>& batch)>;

  /// Worker i's thread is named "<name>-<i>" (name_this_thread).
  keyed_workers(std::size_t count, std::size_t max_group, run_batch run,
                const std::string& name = "js-worker")
      : max_group_(max_group), run_(std::move(run)) {
    for (std::size_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<worker>());
    for (std::size_t i = 0; i < count; ++i)
      workers_[i]->thread = std::thread([this, i, n = fmt::format("{}-{}", name, i)] {
        name_this_thread(n);
        loop(i);
      });
  }
  keyed_workers(const keyed_workers&) = delete;
  keyed_workers& operator=(const keyed_workers&) = delete;
  ~keyed_workers() { drain(); }

  std::size_t size() const noexcept { return workers_.size(); }
  std::size_t index_of(std::string_view key) const noexcept {
    // One worker (the default): no hash and no division per message on the fetcher's thread.
    return workers_.size() == 1 ? 0 : fnv1a32(key) % workers_.size();
  }

  void dispatch(std::string_view key, Item item) {
    auto& w = *workers_[index_of(key)];
    {
      std::lock_guard lk(w.mutex);
      w.queue.push_back(std::move(item));
    }
    w.wake.notify_one();
  }

  /// Hands worker `index` every item of `items` (in order; all of keys that worker owns: see
  /// index_of) under one lock and one wake-up, and leaves `items` empty (its capacity kept).
  void dispatch_to(std::size_t index, std::vector<Item>& items) {
    if (items.empty()) return;
    auto& w = *workers_[index];
    {
      std::lock_guard lk(w.mutex);
      if (w.empty()) {
        // The worker took all it had: the vectors trade places (no item moves); `items` leaves
        // with the queue's old capacity.
        w.queue.clear();
        w.head = 0;
        w.queue.swap(items);
      } else {
        for (auto& item : items) w.queue.push_back(std::move(item));
      }
    }
    items.clear();
    w.wake.notify_one();
  }

  /// Runs `items` (all of keys worker `index` owns, at most max_group) on the calling thread, as
  /// that worker would, when the worker is idle: nothing queued, no task, no batch running. The
  /// worker does not start another batch meanwhile. Leaves `items` empty and returns true when it
  /// ran them; false (and `items` untouched) otherwise: dispatch_to them then. Saves the worker's
  /// wake-up when a few items at a time trickle in.
  bool run_here(std::size_t index, std::vector<Item>& items) {
    auto& w = *workers_[index];
    {
      std::lock_guard lk(w.mutex);
      if (w.running || !w.empty() || !w.controls.empty() || w.closed || items.size() > max_group_)
        return false;
      w.running = true;
    }
    run_(index, items);
    items.clear();
    bool pending = false;
    {
      std::lock_guard lk(w.mutex);
      w.running = false;
      pending = !w.empty() || !w.controls.empty() || !w.timers.empty() || w.closed;
    }
    if (pending) w.wake.notify_one();  // what came meanwhile: the worker waited for us
    return true;
  }

  /// Runs `task` on the worker of `key` between batches. False, and the task is dropped, once
  /// drain() has begun (a task posted before always runs).
  bool post(std::string_view key, std::function<void()> task) {
    return post_to(index_of(key), std::move(task));
  }
  /// The same on worker `index` (a task for every aggregate of that worker).
  bool post_to(std::size_t index, std::function<void()> task) {
    auto& w = *workers_[index];
    {
      std::lock_guard lk(w.mutex);
      if (w.closed) return false;
      w.controls.push_back(std::move(task));
    }
    w.wake.notify_one();
    return true;
  }

  /// Runs `task` on the worker of `key` once `delay` has passed (between batches); false once
  /// drain() has begun. A task not yet due when drain() begins is dropped.
  bool post_after(std::string_view key, std::chrono::milliseconds delay,
                  std::function<void()> task) {
    auto& w = *workers_[index_of(key)];
    {
      std::lock_guard lk(w.mutex);
      if (w.closed) return false;
      w.timers.push_back({std::chrono::steady_clock::now() + delay, std::move(task)});
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
    // Items not yet taken: queue[head..]. A vector with a read index, not a deque: a deque of
    // envelopes allocates a node for every two of them (issue 17 §3).
    std::vector<Item> queue;
    std::size_t head = 0;
    bool empty() const noexcept { return head == queue.size(); }
    std::deque<std::function<void()>> controls;
    struct timer {
      std::chrono::steady_clock::time_point due;
      std::function<void()> task;
    };
    std::vector<timer> timers;  // post_after(): moved to controls when due
    bool closed = false;        // drain(): no new tasks; finish the queue, then exit
    bool running = false;       // a batch or tasks are running (on its thread, or run_here's)
  };

  // Moves the delayed tasks that are due to the controls (under the worker's mutex).
  static void take_due(worker& w) {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = w.timers.begin(); it != w.timers.end();)
      if (it->due <= now) {
        w.controls.push_back(std::move(it->task));
        it = w.timers.erase(it);
      } else {
        ++it;
      }
  }

  // Moves up to max_group items out of the queue into `batch` (under the worker's mutex). All of
  // them: the vectors trade places (no item moves). Some: the rest is moved to the front once
  // it is less than half of the vector (each item moves at most once more, on average).
  void take(worker& w, std::vector<Item>& batch) {
    batch.clear();
    const std::size_t n = std::min(w.queue.size() - w.head, max_group_);
    if (w.head == 0 && n == w.queue.size()) {
      batch.swap(w.queue);
      return;
    }
    for (std::size_t i = 0; i < n; ++i) batch.push_back(std::move(w.queue[w.head + i]));
    w.head += n;
    if (w.head == w.queue.size()) {
      w.queue.clear();
      w.head = 0;
    } else if (w.head * 2 >= w.queue.size()) {
      w.queue.erase(w.queue.begin(), w.queue.begin() + static_cast<std::ptrdiff_t>(w.head));
      w.head = 0;
    }
  }

  void loop(std::size_t index) {
    auto& w = *workers_[index];
    std::vector<Item> batch;
    for (;;) {
      std::deque<std::function<void()>> controls;
      {
        std::unique_lock lk(w.mutex);
        w.running = false;
        // Not while run_here runs a batch for this worker on another thread.
        const auto ready = [&] {
          return !w.running && (!w.empty() || !w.controls.empty() || w.closed);
        };
        while (!ready()) {
          if (w.timers.empty()) {
            w.wake.wait(lk);
          } else {
            // A copy: wait_until reads its deadline after unlocking, while post_after may grow
            // (reallocate) the timers.
            const auto due =
                std::min_element(w.timers.begin(), w.timers.end(), [](auto& a, auto& b) {
                  return a.due < b.due;
                })->due;
            w.wake.wait_until(lk, due);
          }
          take_due(w);
        }
        take_due(w);
        controls.swap(w.controls);
        take(w, batch);
        if (batch.empty() && controls.empty() && w.closed) return;
        w.running = true;
      }
      for (auto& c : controls) c();
      if (!batch.empty()) run_(index, batch);
      batch.clear();  // what run_ left in it goes now, not under the mutex
    }
  }

  const std::size_t max_group_;
  const run_batch run_;
  std::vector<std::unique_ptr<worker>> workers_;
};

}  // namespace jetsource::detail
