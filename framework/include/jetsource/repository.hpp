// repository<A>: loads aggregates (snapshot + tail) and executes commands on them: decide,
// append with optimistic concurrency, reload and retry on conflict.
//
// Thread-safety: safe to share between threads. Commands on one aggregate are serialised inside
// a repository; separate repositories or processes are kept consistent by the stream's
// optimistic concurrency check. Recently used aggregates stay in memory (bounded LRU), so a
// command on a warm aggregate does not read the stream at all; a stale copy is caught by the
// concurrency check and reloaded.
//
// clang-format off
//   jetsource::repository<order> orders{store, {.snapshot_every = 100}};
//   auto r = orders.execute("ord-42", pay_order{.amount_cents = 2599});
//   if (!r && r.error().is(order_error::wrong_amount)) { /* tell the payer */ }
// clang-format on
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace jetsource {

struct repository_options {
  std::size_t cache_capacity = 10'000;  ///< aggregates kept in memory; 0 = always load
  int max_attempts = 32;                ///< decide + append attempts per command on conflicts
  std::chrono::microseconds max_backoff{50'000};  ///< longest random pause between attempts
  int timeout_retries = 2;           ///< re-sends of the same commit after an ack timeout
  std::uint64_t snapshot_every = 0;  ///< snapshot after every N events; 0 = never
  int snapshot_schema = 1;           ///< bump when the aggregate's serialised state changes shape
};

/// Metadata a caller can attach to a command.
struct command_context {
  std::string command_id;      ///< becomes the commit id: the same command id lands once
  std::string correlation_id;  ///< copied to the commit
  std::string causation_id;    ///< copied to the commit
};

/// An aggregate as loaded: its state, version (events so far) and last commit's sequence.
template <class A>
struct loaded {
  A state{};
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;  ///< 0 = no commit yet (a new aggregate)
};

/// The outcome of an accepted command.
struct executed {
  std::uint64_t version = 0;   ///< aggregate version after the command
  std::uint64_t sequence = 0;  ///< stream sequence of its commit (of the last one if no events)
  std::size_t events = 0;      ///< events appended (0: accepted, nothing to change)
  append_status status = append_status::appended;
  int attempts = 1;  ///< decide/append rounds it took (conflicts retried)
};

template <aggregate A>
class repository {
 public:
  using event = typename A::event;
  using registry = event_registry<event>;

  explicit repository(event_store& store, repository_options options = {})
      : store_(store), options_(options) {}

  /// Loads an aggregate (a new, empty one when it has no commit).
  result<loaded<A>> load(std::string_view id) {
    std::optional<loaded<A>> base;
    if constexpr (snapshottable<A>) {
      if (options_.snapshot_every > 0) {
        auto s = store_.load_snapshot(A::type_name, id);
        if (!s) return std::move(s).error();
        if (*s && (*s)->schema == options_.snapshot_schema) {
          auto state = detail::from_json<A>("state", (*s)->body);
          if (state) base = loaded<A>{std::move(state).value(), (*s)->version, (*s)->sequence};
        }
      }
    }
    if (base) {
      bool mismatch = false;
      auto r = replay_into(id, *base, mismatch);
      if (r) return std::move(*base);
      if (!mismatch) return std::move(r).error();
      // A snapshot that does not fit the stream is ignored: correctness never depends on it.
    }
    loaded<A> fresh;
    bool mismatch = false;
    auto r = replay_into(id, fresh, mismatch);
    if (!r) return std::move(r).error();
    return fresh;
  }

  /// Decides the command on the current state and appends its events in one commit. Conflicts
  /// reload and decide again (up to max_attempts). A rejection is errc::rejected with the
  /// aggregate's own error (error::is(order_error::...)).
  template <command_for<A> C>
  result<executed> execute(std::string_view id, const C& command, const command_context& ctx = {}) {
    auto valid = store_.subject_of(A::type_name, id);
    if (!valid) return std::move(valid).error();
    std::string key(id);
    std::lock_guard serial(stripe_for(key));
    const std::string commit_id = ctx.command_id.empty() ? new_commit_id() : ctx.command_id;
    std::optional<loaded<A>> current;
    bool fresh = false;  // read from the stream during this call (not a cached copy)
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      if (!current) current = cache_take(key);  // ours while this command runs
      if (!current) {
        auto l = load(id);
        if (!l) return std::move(l).error();
        current = std::move(l).value();
        fresh = true;
      }
      decision<event> d = std::as_const(current->state).handle(command);
      if (!d.accepted() || d.events().empty()) {
        // Decided on a cached copy: make sure it is not stale before answering.
        if (!fresh) {
          auto caught = catch_up(id, *current);
          if (!caught) return std::move(caught).error();
          fresh = true;
          if (*caught) continue;  // it was stale: decide again on the new state
        }
        executed unchanged{current->version, current->sequence, 0, append_status::appended,
                           attempt};
        cache_put(key, std::move(*current));
        if (!d.accepted()) return d.to_error();
        return unchanged;
      }
      auto events = std::move(d).events();
      auto body = registry::encode(events);
      if (!body) {
        cache_put(key, std::move(*current));
        return std::move(body).error();
      }
      commit c{.aggregate_type = std::string(A::type_name),
               .aggregate_id = key,
               .expected_sequence = current->sequence,
               .version = current->version + events.size(),
               .commit_id = commit_id,
               .event_types = registry::names(events),
               .body = std::move(body).value(),
               .correlation_id = ctx.correlation_id,
               .causation_id = ctx.causation_id};
      auto r = append_retrying(c);
      if (!r) {
        if (!r.error().is(errc::conflict)) return std::move(r).error();
        // Someone else appended first: back off a little (writers that keep colliding spread
        // out), read what they appended, and decide again.
        backoff(attempt);
        if (!catch_up(id, *current)) current.reset();
        fresh = true;
        continue;
      }
      if (r->status == append_status::already_appended)  // our copy cannot know what followed
        return executed{r->version, r->sequence, events.size(), r->status, attempt};
      std::uint64_t old_version = current->version;
      for (const auto& e : events) apply_event(current->state, e);
      current->version = r->version;
      current->sequence = r->sequence;
      maybe_snapshot(id, *current, old_version);
      cache_put(key, std::move(*current));
      return executed{r->version, r->sequence, events.size(), r->status, attempt};
    }
    return make_error(errc::conflict, "{} {}: still conflicting after {} attempts", A::type_name,
                      id, options_.max_attempts);
  }

  /// Drops an aggregate from the in-memory cache.
  void forget(std::string_view id) { cache_erase(std::string(id)); }

  using execute_callback = std::function<void(result<executed>)>;

  /// Pipelined execute: decides now and appends without waiting for the ack, so many commands
  /// (on different aggregates) are in flight at once. `done` receives the outcome exactly once,
  /// on a library thread (keep it short). Commands on one aggregate run one after the other, in
  /// call order; conflicts are retried as in execute. An immediate error (invalid id) is
  /// returned and `done` is not called. The command is copied.
  template <command_for<A> C>
  result<void> execute_async(std::string_view id, C command, execute_callback done,
                             command_context ctx = {}) {
    auto valid = store_.subject_of(A::type_name, id);
    if (!valid) return std::move(valid).error();
    auto job = std::make_shared<async_job>();
    job->key = std::string(id);
    job->commit_id = ctx.command_id.empty() ? new_commit_id() : ctx.command_id;
    job->ctx = std::move(ctx);
    job->done = std::move(done);
    job->decide = [command = std::move(command)](const A& a) -> decision<event> {
      return a.handle(command);
    };
    {
      std::lock_guard lock(async_mutex_);
      ++async_outstanding_;
      auto [it, idle] = busy_.try_emplace(job->key);
      if (!idle) {  // runs when the aggregate's current one is done
        auto& line = it->second;
        (line.last ? line.last->next : line.first) = job;
        line.last = std::move(job);
        return success();
      }
    }
    run(std::move(job));
    return success();
  }

  /// Waits until every execute_async started so far has reported its outcome.
  result<void> flush(std::chrono::milliseconds timeout = std::chrono::milliseconds{30'000}) {
    std::unique_lock lock(async_mutex_);
    if (!async_idle_.wait_for(lock, timeout, [&] { return async_outstanding_ == 0; }))
      return make_error(errc::timeout, "{} async commands still running after {} ms",
                        async_outstanding_, timeout.count());
    return success();
  }

  repository(const repository&) = delete;
  repository& operator=(const repository&) = delete;
  ~repository() {
    (void)flush(std::chrono::hours{1});
    {
      std::lock_guard lock(async_mutex_);
      stopping_ = true;
    }
    worker_wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

 private:
  // Applies the aggregate's commits after `base` (from its sequence up to the stream's head) to
  // it, each as it arrives. Returns how many there were. `mismatch` is set when the commits do
  // not continue `base` (undecodable, versions that do not add up, a head before it): `base` is
  // then partly updated and must be dropped.
  result<std::size_t> replay_into(std::string_view id, loaded<A>& base, bool& mismatch) {
    std::size_t commits = 0;
    auto head =
        store_.replay(A::type_name, id, base.sequence, [&](const commit_view& c) -> result<void> {
          auto events = registry::decode(c.body);
          if (!events) {
            mismatch = true;
            auto e = std::move(events).error();
            e.message = fmt::format("{} {} commit at sequence {}: {}", A::type_name, id, c.sequence,
                                    e.message);
            return e;
          }
          // Only the head's version is read: the sum is checked against it below.
          if (c.version != 0 && c.version != base.version + events->size()) {
            mismatch = true;
            return make_error(
                errc::decode_failed, "{} {}: commit at sequence {} says version {}, expected {}",
                A::type_name, id, c.sequence, c.version, base.version + events->size());
          }
          for (const auto& e : *events) apply_event(base.state, e);
          base.version += events->size();
          base.sequence = c.sequence;
          ++commits;
          return success();
        });
    if (!head) return std::move(head).error();
    if (base.sequence != head->sequence) {
      mismatch = true;
      return make_error(errc::internal, "{} {}: read stopped at sequence {} before head {}",
                        A::type_name, id, base.sequence, head->sequence);
    }
    if (head->sequence != 0 && base.version != head->version) {
      mismatch = true;
      return make_error(errc::decode_failed, "{} {}: replay reached version {}, the head says {}",
                        A::type_name, id, base.version, head->version);
    }
    return commits;
  }

  // Brings a copy up to the stream's head by reading only what follows it. Returns whether
  // anything was new; on an error the copy is partly updated and must be dropped.
  result<bool> catch_up(std::string_view id, loaded<A>& copy) {
    bool mismatch = false;
    auto n = replay_into(id, copy, mismatch);
    if (!n) return std::move(n).error();
    return *n > 0;
  }

  // Full-jitter exponential backoff: uniform in [0, min(max_backoff, 100us * 2^attempt)].
  void backoff(int attempt) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    auto cap = std::min<std::int64_t>(options_.max_backoff.count(), 100LL << std::min(attempt, 12));
    std::uniform_int_distribution<std::int64_t> pick(0, cap);
    std::this_thread::sleep_for(std::chrono::microseconds{pick(rng)});
  }

  // Sends one commit; after an ack timeout re-sends the same commit (same commit id), which
  // lands at most once thanks to the stream's duplicate window.
  result<append_result> append_retrying(const commit& c) {
    for (int i = 0;; ++i) {
      auto r = store_.append(c);
      if (r || !r.error().is(errc::timeout) || i >= options_.timeout_retries) return r;
    }
  }

  void maybe_snapshot(std::string_view id, const loaded<A>& l, std::uint64_t old_version) {
    if constexpr (snapshottable<A>) {
      auto n = options_.snapshot_every;
      if (n == 0 || l.version / n == old_version / n) return;
      auto body = detail::to_json("state", l.state);
      if (body)
        (void)store_.save_snapshot(
            A::type_name, id,
            {l.version, l.sequence, options_.snapshot_schema, std::move(body).value()});
    } else {
      (void)id, (void)l, (void)old_version;
    }
  }

  // -- pipelined execution ------------------------------------------------------------------
  struct async_job {
    std::string key, commit_id;
    command_context ctx;
    execute_callback done;
    std::function<decision<event>(const A&)> decide;
    std::optional<loaded<A>> current;
    bool fresh = false;  // current was read from the stream for this job
    int attempt = 0;
    std::vector<event> events;        // in flight
    std::shared_ptr<async_job> next;  // the aggregate's next queued job
  };
  // The jobs waiting behind an aggregate's running one (a list through async_job::next: an
  // idle aggregate costs no allocation beyond its map entry).
  struct waiting_line {
    std::shared_ptr<async_job> first, last;
  };

  // Decides and starts the append of a job. May read the stream (a cache miss, a stale copy):
  // runs on the caller's thread or the worker, never on an ack callback.
  void run(std::shared_ptr<async_job> job) {
    while (++job->attempt <= options_.max_attempts) {
      if (!job->current) job->current = cache_take(job->key);
      if (!job->current) {
        auto l = load(job->key);
        if (!l) return finish(job, std::move(l).error());
        job->current = std::move(l).value();
        job->fresh = true;
      }
      decision<event> d = job->decide(job->current->state);
      if (!d.accepted() || d.events().empty()) {
        if (!job->fresh) {  // decided on a cached copy: make sure it is not stale
          auto caught = catch_up(job->key, *job->current);
          if (!caught) return finish(job, std::move(caught).error());
          job->fresh = true;
          if (*caught) continue;
        }
        keep(job);
        if (!d.accepted()) return finish(job, d.to_error());
        return finish(job, executed{job->current->version, job->current->sequence, 0,
                                    append_status::appended, job->attempt});
      }
      job->events = std::move(d).events();
      auto body = registry::encode(job->events);
      if (!body) {
        keep(job);
        return finish(job, std::move(body).error());
      }
      commit c{.aggregate_type = std::string(A::type_name),
               .aggregate_id = job->key,
               .expected_sequence = job->current->sequence,
               .version = job->current->version + job->events.size(),
               .commit_id = job->commit_id,
               .event_types = registry::names(job->events),
               .body = std::move(body).value(),
               .correlation_id = job->ctx.correlation_id,
               .causation_id = job->ctx.causation_id};
      auto started = store_.append_async(
          std::move(c), [this, job](result<append_result> r) { on_ack(job, std::move(r)); });
      if (!started) {
        keep(job);  // nothing was sent: the copy is still right
        return finish(job, std::move(started).error());
      }
      return;
    }
    finish(job, make_error(errc::conflict, "{} {}: still conflicting after {} attempts",
                           A::type_name, job->key, options_.max_attempts));
  }

  // On the store's ack thread: only in-memory work here; anything that reads goes to the worker.
  void on_ack(const std::shared_ptr<async_job>& job, result<append_result> r) {
    if (!r && r.error().is(errc::conflict)) {
      post([this, job] {
        backoff(job->attempt);
        if (!catch_up(job->key, *job->current)) job->current.reset();
        job->fresh = true;
        run(job);
      });
      return;
    }
    if (!r) return finish(job, std::move(r).error());
    auto n = job->events.size();
    if (r->status == append_status::already_appended)  // our copy cannot know what followed
      return finish(job, executed{r->version, r->sequence, n, r->status, job->attempt});
    auto& cur = *job->current;
    std::uint64_t old_version = cur.version;
    for (const auto& e : job->events) apply_event(cur.state, e);
    cur.version = r->version;
    cur.sequence = r->sequence;
    maybe_snapshot(job->key, cur, old_version);
    keep(job);
    finish(job, executed{r->version, r->sequence, n, r->status, job->attempt});
  }

  // Puts a job's (valid) copy of its aggregate back into the cache.
  void keep(const std::shared_ptr<async_job>& job) {
    if (job->current) cache_put(job->key, std::move(*job->current));
    job->current.reset();
  }

  // Reports a job's outcome, then starts the aggregate's next queued job (on the worker).
  void finish(const std::shared_ptr<async_job>& job, result<executed> r) {
    if (job->done) job->done(std::move(r));
    bool posted = false;
    {
      std::lock_guard lock(async_mutex_);
      auto it = busy_.find(job->key);
      auto& line = it->second;
      if (!line.first) {
        busy_.erase(it);
      } else {
        std::shared_ptr<async_job> next = std::move(line.first);
        line.first = std::move(next->next);
        if (!line.first) line.last.reset();
        post_locked([this, next] { run(next); });
        posted = true;
      }
      if (--async_outstanding_ == 0) async_idle_.notify_all();
    }
    if (posted) worker_wake_.notify_one();
  }

  void post_locked(std::function<void()> task) {
    tasks_.push_back(std::move(task));
    if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
  }

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(async_mutex_);
      post_locked(std::move(task));
    }
    worker_wake_.notify_one();
  }

  void work() {
    std::unique_lock lock(async_mutex_);
    for (;;) {
      worker_wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, nothing left
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  // -- bounded LRU of loaded aggregates ------------------------------------------------------
  struct cached {
    std::optional<loaded<A>> value;  // empty while a command has it
    typename std::list<std::string>::iterator lru;
  };

  // Moves an aggregate out of the cache: a command owns it while it runs (no copy), and puts it
  // back when its copy is known to be right. The entry stays (empty), so the round trip
  // allocates nothing.
  std::optional<loaded<A>> cache_take(const std::string& key) {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end() || !it->second.value) return std::nullopt;
    std::optional<loaded<A>> out{std::move(it->second.value)};
    it->second.value.reset();
    return out;
  }
  void cache_put(const std::string& key, loaded<A>&& value) {
    if (options_.cache_capacity == 0) return;
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      auto& v = it->second.value;
      if (!v || v->sequence <= value.sequence) v = std::move(value);
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return;
    }
    lru_.push_front(key);
    cache_.emplace(key, cached{std::move(value), lru_.begin()});
    if (cache_.size() > options_.cache_capacity) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
  }
  void cache_erase(const std::string& key) {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return;
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  std::mutex& stripe_for(const std::string& key) {
    return stripes_[fnv1a32(key) % stripes_.size()];
  }

  event_store& store_;
  repository_options options_;
  std::mutex cache_mutex_;
  std::list<std::string> lru_;
  std::unordered_map<std::string, cached> cache_;
  std::array<std::mutex, 256> stripes_;

  std::mutex async_mutex_;  // guards everything below
  std::condition_variable async_idle_, worker_wake_;
  std::size_t async_outstanding_ = 0;
  std::unordered_map<std::string, waiting_line> busy_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace jetsource
