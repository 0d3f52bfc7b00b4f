// detail: the executor behind repository::execute_async (per-key lines, the worker thread).
//
// Ownership: every member of `state` is guarded by `mutex` (the only lock here), except `start`
// (set once) and `worker`, which only the destructor joins. Jobs and tasks run without the lock.
#include <jetsource/detail/keyed_executor.hpp>

#include "thread_name.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace jetsource::detail {

namespace {

// The jobs waiting behind a key's running one (a list through queued_job::next).
struct waiting_line {
  std::shared_ptr<queued_job> first, last;
};

}  // namespace

struct keyed_executor::state {
  starter start;
  std::mutex mutex;
  std::condition_variable idle, wake;                  // outstanding reached 0; a task or stopping
  std::size_t outstanding = 0;                         // admitted, not finished
  std::unordered_map<std::string, waiting_line> busy;  // keys with a running job
  std::deque<std::function<void()>> tasks;
  bool stopping = false;
  std::thread worker;  // started by the first task

  // With `mutex` held.
  void post_locked(std::function<void()> task) {
    tasks.push_back(std::move(task));
    if (!worker.joinable())
      worker = std::thread([this] {
        detail::name_this_thread("js-executor");
        work();
      });
  }

  void work() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return stopping || !tasks.empty(); });
      if (tasks.empty()) return;  // stopping, nothing left
      auto task = std::move(tasks.front());
      tasks.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
};

keyed_executor::keyed_executor(starter start) : state_(std::make_unique<state>()) {
  state_->start = std::move(start);
}

keyed_executor::~keyed_executor() {
  (void)flush(std::chrono::hours{1});
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  if (state_->worker.joinable()) state_->worker.join();
}

bool keyed_executor::admit(const std::string& key, std::shared_ptr<queued_job> job) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  ++s.outstanding;
  auto [it, idle] = s.busy.try_emplace(key);
  if (idle) return true;
  auto& line = it->second;  // runs when the key's current one is done
  (line.last ? line.last->next : line.first) = job;
  line.last = std::move(job);
  return false;
}

void keyed_executor::finished(const std::string& key) {
  auto& s = *state_;
  bool posted = false;
  {
    std::lock_guard lock(s.mutex);
    auto it = s.busy.find(key);
    auto& line = it->second;
    if (!line.first) {
      s.busy.erase(it);
    } else {
      std::shared_ptr<queued_job> next = std::move(line.first);
      line.first = std::move(next->next);
      if (!line.first) line.last.reset();
      s.post_locked([&s, next] { s.start(next); });
      posted = true;
    }
    if (--s.outstanding == 0) s.idle.notify_all();
  }
  if (posted) s.wake.notify_one();
}

void keyed_executor::post(std::function<void()> task) {
  {
    std::lock_guard lock(state_->mutex);
    state_->post_locked(std::move(task));
  }
  state_->wake.notify_one();
}

result<void> keyed_executor::flush(std::chrono::milliseconds timeout) {
  auto& s = *state_;
  std::unique_lock lock(s.mutex);
  if (!s.idle.wait_for(lock, timeout, [&] { return s.outstanding == 0; }))
    return make_error(errc::timeout, "{} async commands still running after {} ms", s.outstanding,
                      timeout.count());
  return success();
}

}  // namespace jetsource::detail
