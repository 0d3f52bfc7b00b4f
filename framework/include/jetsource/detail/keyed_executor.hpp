// detail: the non-template executor behind repository::execute_async: one job at a time per key
// (in submission order), a worker thread for the jobs that must not run on an ack callback, and
// the count of jobs not yet finished (flush). Not API; implemented in framework/src.
//
// Thread-safety: safe to share. Its one mutex guards the per-key lines, the task queue, the
// count and the worker's start and stop; jobs and tasks always run without it held.
#pragma once

#include <jetsource/result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace jetsource::detail {

/// A job waiting behind its key's running one: the executor links them through `next`, so an
/// idle key costs no allocation beyond its map entry.
struct queued_job {
  virtual ~queued_job() = default;
  std::shared_ptr<queued_job> next;
};

class keyed_executor {
 public:
  /// Starts a queued job (on the worker thread) once its key's earlier jobs are done.
  using starter = std::function<void(std::shared_ptr<queued_job>)>;

  explicit keyed_executor(starter start);
  keyed_executor(const keyed_executor&) = delete;
  keyed_executor& operator=(const keyed_executor&) = delete;
  /// Waits for every job (at most an hour), then stops the worker thread.
  ~keyed_executor();

  /// Counts a new job for `key`. True: the key was idle and the caller starts the job now, on
  /// its own thread; false: it is queued and started by the starter when its turn comes.
  bool admit(const std::string& key, std::shared_ptr<queued_job> job);

  /// The key's running job has reported its outcome: queues the key's next job for the worker,
  /// and counts the job as finished.
  void finished(const std::string& key);

  /// Runs `task` on the worker thread (started on first use), after the tasks before it.
  void post(std::function<void()> task);

  /// Waits until every job admitted so far has finished. errc::timeout otherwise.
  result<void> flush(std::chrono::milliseconds timeout);

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace jetsource::detail
