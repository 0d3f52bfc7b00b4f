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
//   jetsource::repository<order> orders{store};  // snapshots at the head by default
//   auto r = orders.execute("ord-42", pay_order{.amount_cents = 2599});
//   if (!r && r.error().is(order_error::wrong_amount)) { /* tell the payer */ }
// clang-format on
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/detail/aggregate_cache.hpp>
#include <jetsource/detail/aggregate_loader.hpp>
#include <jetsource/detail/command_meters.hpp>
#include <jetsource/detail/in_doubt_commits.hpp>
#include <jetsource/detail/keyed_executor.hpp>
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/metrics.hpp>
#include <jetsource/result.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace jetsource {

struct repository_options {
  std::size_t cache_capacity = 10'000;  ///< aggregates kept in memory; 0 = always load
  int max_attempts = 32;                ///< decide + append attempts per command on conflicts
  std::chrono::microseconds max_backoff{50'000};  ///< longest random pause between attempts
  int timeout_retries = 2;  ///< re-sends of the same commit after an ack timeout
  /// Snapshot after every N events (aggregates with `serialize` only); 0 = never. The default, 1,
  /// keeps the state at the head of every aggregate: each commit carries the state it leads to
  /// (up to head_state_max_bytes), so a cold load is one get of the head (ADR 0022); a larger
  /// state goes to the snapshot stream (the head and it are then read together, ADR 0017).
  std::uint64_t snapshot_every = 1;
  int snapshot_schema = 1;  ///< bump when the aggregate's serialised state changes shape
  /// With snapshot_every = 1: the largest state (bytes of its JSON) a commit carries; 0 = none,
  /// every snapshot goes to the snapshot stream. Every commit stores it: keep states small.
  std::size_t head_state_max_bytes = 4096;
  /// An aggregate not in the cache is first presumed new (no commit yet), without reading the
  /// stream: a command that creates it appends at once, expecting no commit on its subject (one
  /// round trip, not two). A command the empty aggregate rejects or leaves unchanged is decided
  /// again on the aggregate as loaded; one it accepts on an aggregate that does exist is refused
  /// by the stream and decided again on the loaded aggregate, like any conflict (ADR 0020).
  bool presume_new = true;
  /// where jetsource_commands_total and jetsource_append_duration_seconds are recorded
  /// (docs/operations.md, "Metrics"); nullptr: nowhere
  metrics::registry* metrics = &metrics::default_registry();
};

/// Metadata a caller can attach to a command.
struct command_context {
  std::string command_id;      ///< becomes the commit id: the same command id lands once
  std::string correlation_id;  ///< copied to the commit
  std::string causation_id;    ///< copied to the commit
};

/// The outcome of an accepted command.
struct executed {
  std::uint64_t version = 0;   ///< aggregate version after the command
  std::uint64_t sequence = 0;  ///< stream sequence of its commit (of the last one if no events)
  std::size_t events = 0;      ///< events appended (0: accepted, nothing to change)
  append_status status = append_status::appended;
  int attempts = 1;  ///< decide/append rounds it took (conflicts retried)
};

// Inside: `execute` holds the aggregate's stripe mutex for the whole command; the cache and the
// executor each have one mutex of their own, taken briefly and never while calling out (lock
// order: stripe, then cache or executor). A command owns its copy of the aggregate (checked out
// of the cache) until it puts it back. Async jobs run on the caller's thread or the executor's
// worker; ack callbacks (a nats.c thread) only apply events and cache. The meters (metrics) are
// set in the constructor; recording on them is atomic, from any of those threads.
template <aggregate A>
class repository {
 public:
  using event = typename A::event;
  using registry = event_registry<event>;

  explicit repository(event_store& store, repository_options options = {})
      : store_(store),
        options_(options),
        loader_(store, options.snapshot_every, options.snapshot_schema,
                options.head_state_max_bytes),
        cache_(options.cache_capacity),
        meters_(options.metrics, A::type_name),
        executor_([this](std::shared_ptr<detail::queued_job> j) {
          run(std::static_pointer_cast<async_job>(std::move(j)));
        }) {}

  /// Loads an aggregate (a new, empty one when it has no commit).
  /// With snapshots (the default for an aggregate with `serialize`), the head and the snapshot
  /// are asked for at once: a snapshot at the head is the whole load (ADR 0017).
  result<loaded<A>> load(std::string_view id) { return loader_.load(id); }

  /// Decides the command on the current state and appends its events in one commit. Conflicts
  /// reload and decide again (up to max_attempts). A rejection is errc::rejected with the
  /// aggregate's own error (error::is(order_error::...)).
  template <command_for<A> C>
  result<executed> execute(std::string_view id, const C& command, const command_context& ctx = {}) {
    auto valid = store_.subject_of(A::type_name, id);
    if (!valid) {
      meters_.count(detail::command_outcome::failed);
      return std::move(valid).error();
    }
    command_state cs(std::string(id), ctx);
    return counted(cs, execute_now(cs, command));
  }

  /// Drops an aggregate from the in-memory cache.
  void forget(std::string_view id) { cache_.erase(std::string(id)); }

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
    if (!valid) {
      meters_.count(detail::command_outcome::failed);
      return std::move(valid).error();
    }
    auto job = std::make_shared<async_job>(std::string(id), std::move(ctx));
    job->done = std::move(done);
    job->decide = [command = std::move(command)](const A& a) -> decision<event> {
      return a.handle(command);
    };
    if (executor_.admit(job->cmd.key, job)) run(std::move(job));
    return success();
  }

  /// Waits until every execute_async started so far has reported its outcome.
  result<void> flush(std::chrono::milliseconds timeout = std::chrono::milliseconds{30'000}) {
    return executor_.flush(timeout);
  }

  repository(const repository&) = delete;
  repository& operator=(const repository&) = delete;
  /// Waits for every execute_async (the executor, the last member, goes first).
  ~repository() = default;

 private:
  // -- the one step of a command, shared by execute and execute_async ---------------------------
  // A command while it runs: its copy of the aggregate (checked out of the cache, or loaded),
  // its attempts, and the events of the commit in flight.
  struct command_state {
    command_state(std::string k, command_context c)
        : key(std::move(k)),
          commit_id(c.command_id.empty() ? new_commit_id() : c.command_id),
          ctx(std::move(c)) {}
    std::string key, commit_id;
    command_context ctx;
    std::optional<loaded<A>> current;
    bool fresh = false;         // current was read from the stream for this command
    bool presumed_new = false;  // current is an empty aggregate presumed, not read (ADR 0020)
    bool may_presume = true;    // only the first copy of a command may be presumed
    int attempt = 0;
    int conflicts = 0;                             // appends refused by the concurrency check
    std::vector<event> events;                     // of the commit in flight
    std::optional<A> after;                        // the state it leads to, when it carries it
    std::chrono::steady_clock::time_point sent{};  // when its async append was sent
  };

  // What one round came to: nothing yet (a stale cached copy was caught up: decide again), the
  // command's answer, or the commit to append.
  using round = std::variant<std::monostate, result<executed>, commit>;

  template <command_for<A> C>
  result<executed> execute_now(command_state& cs, const C& command) {
    std::lock_guard serial(stripe_for(cs.key));
    auto decide = [&command](const A& a) { return a.handle(command); };
    while (++cs.attempt <= options_.max_attempts) {
      round r = decide_round(cs, decide);
      if (auto* answer = std::get_if<result<executed>>(&r)) return std::move(*answer);
      auto* c = std::get_if<commit>(&r);
      if (c == nullptr) continue;  // a stale cached copy, caught up: decide again
      auto appended = append_retrying(*c);
      if (!appended && appended.error().is(errc::conflict)) {
        after_conflict(cs);
        continue;
      }
      if (!appended && in_doubt_kept(cs, appended.error())) in_doubt_.put(*c);
      return settle(cs, std::move(appended));
    }
    return too_many_conflicts(cs);
  }

  // Counts a command's outcome (jetsource_commands_total) and hands it on.
  result<executed> counted(const command_state& cs, result<executed> r) {
    using o = detail::command_outcome;
    if (!meters_.on()) return r;
    if (!r)
      meters_.count(r.error().rejection ? o::rejected : o::failed);
    else if (r->status == append_status::already_appended)
      meters_.count(o::already_appended);
    else
      meters_.count(cs.conflicts > 0 ? o::conflict_retried : o::appended);
    return r;
  }

  // Takes the copy (cache, else the stream), decides, and encodes the events into a commit. A
  // rejection or an empty decision made on a cached copy is confirmed against the stream first.
  // Every answer but a load error puts the (valid) copy back into the cache.
  template <class Decide>
  round decide_round(command_state& cs, Decide&& decide) {
    // Before deciding: on the state after its own commit, a re-run would be rejected.
    if (auto landed = landed_before(cs)) return result<executed>(std::move(*landed));
    if (auto taken = take_copy(cs); !taken) return result<executed>(std::move(taken).error());
    decision<event> d = decide(std::as_const(cs.current->state));
    if ((!d.accepted() || d.events().empty()) && cs.presumed_new) {
      // Not a command that creates it: the aggregate may well exist. Decide on it as loaded.
      cs.current.reset();
      cs.presumed_new = false;
      if (auto taken = take_copy(cs); !taken) return result<executed>(std::move(taken).error());
      d = decide(std::as_const(cs.current->state));
    }
    if (!d.accepted() || d.events().empty()) {
      if (!cs.fresh) {  // decided on a cached copy: make sure it is not stale
        auto caught = loader_.catch_up(cs.key, *cs.current);
        if (!caught) return result<executed>(std::move(caught).error());
        cs.fresh = true;
        if (*caught) return std::monostate{};
      }
      // Subject-sequence scheme: a re-run whose own commit is the head decides on the state
      // after it, so it changes nothing or is rejected; its answer is already_appended.
      if (auto landed = head_is(cs, concurrency_scheme::subject_sequence)) {
        keep(cs);
        return result<executed>(std::move(*landed));
      }
      executed unchanged{cs.current->version, cs.current->sequence, 0, append_status::appended,
                         cs.attempt};
      keep(cs);
      if (!d.accepted()) return result<executed>(d.to_error());
      return result<executed>(unchanged);
    }
    cs.events = std::move(d).events();
    auto body = registry::encode(cs.events);
    if (!body) {
      keep(cs);
      return result<executed>(std::move(body).error());
    }
    commit c{.aggregate_type = std::string(A::type_name),
             .aggregate_id = cs.key,
             .expected_sequence = cs.current->sequence,
             .version = cs.current->version + cs.events.size(),
             .commit_id = cs.commit_id,
             .event_types = registry::names(cs.events),
             .body = std::move(body).value(),
             .correlation_id = cs.ctx.correlation_id,
             .causation_id = cs.ctx.causation_id};
    carry_state(cs, c);
    return c;
  }

  // With a snapshot at every commit (the default), the commit carries the state it leads to
  // (ADR 0022): a cold load is then the head alone. That state is kept for settle.
  void carry_state(command_state& cs, commit& c) {
    cs.after.reset();
    if (!loader_.commits_carry_state()) return;
    A after = cs.current->state;
    for (const auto& e : cs.events) apply_event(after, e);
    auto json = loader_.state_for_head(after);
    if (!json) return;
    c.state = std::move(*json);
    c.state_schema = loader_.snapshot_schema();
    cs.after = std::move(after);
  }

  // The command's copy of its aggregate: from the cache, else presumed new (the first time, when
  // allowed: ADR 0020), else loaded from the stream. Ours while the command runs.
  result<void> take_copy(command_state& cs) {
    if (!cs.current) cs.current = cache_.take(cs.key);
    if (cs.current) return success();
    if (std::exchange(cs.may_presume, false) && options_.presume_new) {
      cs.current.emplace();
      cs.presumed_new = true;
      return success();
    }
    auto l = load(cs.key);
    if (!l) return std::move(l).error();
    cs.current = std::move(l).value();
    cs.fresh = true;
    return success();
  }

  // A command re-run with its command id after its commit landed (its caller saw no answer):
  // under the commit-slot scheme (docs/adr/0015) the new commit would get a new slot and land
  // again, so the aggregate's head is checked before deciding (one direct get, only for
  // commands with an id). Under the subject-sequence scheme Nats-Msg-Id is the command id: a
  // re-run that decides to append is answered already_appended by the stream, and one that
  // decides nothing or is rejected checks the head (decide_round).
  std::optional<result<executed>> landed_before(command_state& cs) {
    if (cs.attempt != 1 || cs.ctx.command_id.empty() ||
        store_.scheme() != concurrency_scheme::commit_slot)
      return std::nullopt;
    if (auto resolved = resolve_in_doubt(cs)) return resolved;
    auto landed = head_is(cs, concurrency_scheme::commit_slot);
    if (landed && *landed) cache_.erase(cs.key);  // a cached copy may predate the commit
    return landed;
  }

  // already_appended when the aggregate's head is this command's commit (a command with an id,
  // on a store of `scheme`).
  std::optional<result<executed>> head_is(command_state& cs, concurrency_scheme scheme) {
    if (cs.ctx.command_id.empty() || store_.scheme() != scheme) return std::nullopt;
    auto h = store_.head(A::type_name, cs.key);
    if (!h) return result<executed>(std::move(h).error());
    if (!*h || (*h)->commit_id != cs.commit_id) return std::nullopt;
    return result<executed>(executed{(*h)->version, (*h)->sequence, (*h)->events,
                                     append_status::already_appended, cs.attempt});
  }

  // An append with an unknown outcome (timeout, lost connection) of a command with an id, under
  // the commit-slot scheme: kept, so that a re-run of the command resolves it (below).
  bool in_doubt_kept(const command_state& cs, const error& e) const {
    return !cs.ctx.command_id.empty() && store_.scheme() == concurrency_scheme::commit_slot &&
           (e.is(errc::timeout) || e.is(errc::unreachable));
  }

  // A re-run of a command whose earlier commit is in doubt sends that exact commit again: the
  // stream answers already_appended (it had landed, however many commits followed), appended
  // (it lands now, on the state it was decided on, still the head), or conflict (it never
  // landed: decide anew, nullopt). Still no answer: in doubt again, and the error.
  std::optional<result<executed>> resolve_in_doubt(command_state& cs) {
    auto doubt = in_doubt_.take(cs.commit_id);
    if (!doubt || doubt->aggregate_id != cs.key) {
      if (doubt) in_doubt_.put(*doubt);
      return std::nullopt;
    }
    auto r = append_retrying(*doubt);
    if (!r && r.error().is(errc::conflict)) return std::nullopt;
    if (!r) {
      if (in_doubt_kept(cs, r.error())) in_doubt_.put(*doubt);
      return result<executed>(std::move(r).error());
    }
    cache_.erase(cs.key);  // a cached copy predates the commit
    const auto n = static_cast<std::size_t>(
        1 + std::count(doubt->event_types.begin(), doubt->event_types.end(), ','));
    return result<executed>(executed{r->version, r->sequence, n, r->status, cs.attempt});
  }

  // Someone else appended first: back off a little (writers that keep colliding spread out) and
  // read what they appended; the next round decides again. A copy presumed new is dropped
  // instead (the aggregate existed: the next round loads it, no pause).
  void after_conflict(command_state& cs) {
    ++cs.conflicts;
    if (std::exchange(cs.presumed_new, false)) {  // it existed: load it (snapshot first)
      cs.current.reset();
      return;
    }
    backoff(cs.attempt);
    if (!loader_.catch_up(cs.key, *cs.current)) cs.current.reset();
    cs.fresh = true;
  }

  // The append's outcome (not a conflict): applies the events to the copy, snapshots, caches it.
  // An error or an idempotent retry drops the copy (it cannot know what followed).
  result<executed> settle(command_state& cs, result<append_result> r) {
    if (!r) return std::move(r).error();
    const auto n = cs.events.size();
    if (r->status == append_status::already_appended)
      return executed{r->version, r->sequence, n, r->status, cs.attempt};
    auto& cur = *cs.current;
    cs.presumed_new = false;  // the stream stored it expecting no commit: it was new
    std::uint64_t old_version = cur.version;
    if (cs.after)
      cur.state = std::move(*cs.after);  // the events applied already
    else
      for (const auto& e : cs.events) apply_event(cur.state, e);
    cs.after.reset();
    cur.version = r->version;
    cur.sequence = r->sequence;
    // A commit that carries its state is the snapshot; else one goes to the snapshot stream.
    if (!r->state_stored) loader_.maybe_snapshot(cs.key, cur, old_version);
    keep(cs);
    return executed{r->version, r->sequence, n, r->status, cs.attempt};
  }

  error too_many_conflicts(const command_state& cs) const {
    return make_error(errc::conflict, "{} {}: still conflicting after {} attempts", A::type_name,
                      cs.key, options_.max_attempts);
  }

  // Puts a command's (valid) copy of its aggregate back into the cache; a copy only presumed
  // new (never confirmed by the stream) is dropped.
  void keep(command_state& cs) {
    if (cs.current && !cs.presumed_new) cache_.put(cs.key, std::move(*cs.current));
    cs.current.reset();
  }

  std::mutex& stripe_for(const std::string& key) {
    return stripes_[fnv1a32(key) % stripes_.size()];
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
      std::chrono::steady_clock::time_point sent{};
      if (meters_.on()) sent = std::chrono::steady_clock::now();
      auto r = store_.append(c);
      if (meters_.on()) meters_.append_took(std::chrono::steady_clock::now() - sent);
      if (r || !r.error().is(errc::timeout) || i >= options_.timeout_retries) return r;
    }
  }

  // -- pipelined execution ----------------------------------------------------------------
  struct async_job : detail::queued_job {
    async_job(std::string key, command_context ctx) : cmd(std::move(key), std::move(ctx)) {}
    command_state cmd;
    execute_callback done;
    std::function<decision<event>(const A&)> decide;
  };

  // Decides and starts the append of a job. May read the stream (a cache miss, a stale copy):
  // runs on the caller's thread or the executor's worker, never on an ack callback.
  void run(std::shared_ptr<async_job> job) {
    auto& cs = job->cmd;
    while (++cs.attempt <= options_.max_attempts) {
      round r = decide_round(cs, job->decide);
      if (auto* answer = std::get_if<result<executed>>(&r)) return finish(job, std::move(*answer));
      auto* c = std::get_if<commit>(&r);
      if (c == nullptr) continue;
      if (meters_.on()) cs.sent = std::chrono::steady_clock::now();
      auto started = store_.append_async(
          std::move(*c), [this, job](result<append_result> a) { on_ack(job, std::move(a)); });
      if (!started) {
        keep(cs);  // nothing was sent: the copy is still right
        return finish(job, std::move(started).error());
      }
      return;
    }
    finish(job, too_many_conflicts(cs));
  }

  // On the store's ack thread: only in-memory work here; anything that reads goes to the worker.
  void on_ack(const std::shared_ptr<async_job>& job, result<append_result> r) {
    if (meters_.on()) meters_.append_took(std::chrono::steady_clock::now() - job->cmd.sent);
    if (!r && r.error().is(errc::conflict)) {
      executor_.post([this, job] {
        after_conflict(job->cmd);
        run(job);
      });
      return;
    }
    finish(job, settle(job->cmd, std::move(r)));
  }

  // Reports a job's outcome, then lets the aggregate's next queued job start (on the worker).
  void finish(const std::shared_ptr<async_job>& job, result<executed> r) {
    r = counted(job->cmd, std::move(r));
    if (job->done) job->done(std::move(r));
    executor_.finished(job->cmd.key);
  }

  event_store& store_;
  repository_options options_;
  detail::aggregate_loader<A> loader_;
  detail::aggregate_cache<loaded<A>> cache_;
  detail::command_meters meters_;
  detail::in_doubt_commits in_doubt_;    // commits of commands with an id, outcome unknown
  std::array<std::mutex, 256> stripes_;  // commands on one aggregate, one at a time (execute)
  // Last: destroyed first, it waits for the async commands that still use the members above.
  detail::keyed_executor executor_;
};

}  // namespace jetsource
