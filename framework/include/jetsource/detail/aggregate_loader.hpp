// detail: how a repository reads an aggregate and what it keeps for the next cold load (ADR 0017,
// ADR 0022). With a snapshot at every commit (the default) each commit carries the state it leads
// to, so a load is the head alone; a state too large for that goes to the snapshot stream, and a
// load then asks for the head and the snapshot at once and replays the commits after the
// snapshot (or all of them). Also: catching a cached copy up.
//
// Thread-safety: safe to share. Beyond its settings it keeps one guess (atomic): whether heads
// carry their state, so whether to ask for the head alone first. Callers own the copies they pass.
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/detail/codec.hpp>
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace jetsource::detail {

template <aggregate A>
class aggregate_loader {
 public:
  using registry = event_registry<typename A::event>;

  /// `snapshot_every` 0: never read nor write snapshots. `head_state_max`: the largest state (in
  /// bytes of JSON) a commit carries when snapshot_every is 1; 0: none does.
  aggregate_loader(event_store& store, std::uint64_t snapshot_every, int snapshot_schema,
                   std::size_t head_state_max)
      : store_(store),
        snapshot_every_(snapshot_every),
        snapshot_schema_(snapshot_schema),
        head_state_max_(snapshottable<A> && snapshot_every == 1 ? head_state_max : 0),
        heads_carry_state_(head_state_max_ > 0) {}

  /// The aggregate as the stream has it (a new, empty one when it has no commit). With
  /// snapshots, a state carried by the head, or a snapshot at the head, is the whole load; one
  /// that does not fit the stream is ignored (correctness never depends on it).
  result<loaded<A>> load(std::string_view id) {
    if constexpr (snapshottable<A>)
      if (snapshot_every_ > 0) return load_with_snapshots(id);
    return replay_all(id);
  }

  /// The state a commit leading to `after` carries (ADR 0022): its JSON, when commits carry
  /// states and it is at most head_state_max bytes; else nullopt (maybe_snapshot then keeps it).
  std::optional<std::string> state_for_head(const A& after) const {
    if constexpr (snapshottable<A>) {
      if (head_state_max_ == 0) return std::nullopt;
      auto json = to_json_value(after);
      if (!json || json->size() > head_state_max_) return std::nullopt;
      return std::move(json).value();
    } else {
      (void)after;
      return std::nullopt;
    }
  }
  bool commits_carry_state() const noexcept { return head_state_max_ > 0; }
  int snapshot_schema() const noexcept { return snapshot_schema_; }

  /// Brings a copy up to the stream's head by reading only what follows it. Returns whether
  /// anything was new; on an error the copy is partly updated and must be dropped.
  result<bool> catch_up(std::string_view id, loaded<A>& copy) {
    bool mismatch = false;
    auto n = replay_into(id, copy, mismatch);
    if (!n) return std::move(n).error();
    return *n > 0;
  }

  /// Saves a snapshot of `l` when its version passed a multiple of `snapshot_every` since
  /// `old_version` (aggregates with `serialize` only; a failed save is only a slower next load).
  void maybe_snapshot(std::string_view id, const loaded<A>& l, std::uint64_t old_version) {
    if constexpr (snapshottable<A>) {
      auto n = snapshot_every_;
      if (n == 0 || l.version / n == old_version / n) return;
      auto body = to_json("state", l.state);
      if (body)
        (void)store_.save_snapshot(
            A::type_name, id, {l.version, l.sequence, snapshot_schema_, std::move(body).value()});
    } else {
      (void)id, (void)l, (void)old_version;
    }
  }

 private:
  // While heads carry their state (the last one read did), the head alone: one get. Otherwise the
  // head and the snapshot at once.
  result<loaded<A>> load_with_snapshots(std::string_view id) {
    event_store::head_and_snapshot hs;
    if (heads_carry_state_.load(std::memory_order_relaxed)) {
      auto h = store_.head(A::type_name, id);
      if (!h) return std::move(h).error();
      if (!*h) return loaded<A>{};  // no commit: a new aggregate
      if (auto l = carried_state(**h)) return std::move(*l);
      heads_carry_state_.store(false, std::memory_order_relaxed);
      auto snap = store_.load_snapshot(A::type_name, id);
      if (!snap) return std::move(snap).error();
      hs = {std::move(*h), std::move(snap).value()};
    } else {
      auto got = store_.load_head_and_snapshot(A::type_name, id);
      if (!got) return std::move(got).error();
      if (!got->head) return loaded<A>{};
      if (auto l = carried_state(*got->head)) {
        heads_carry_state_.store(true, std::memory_order_relaxed);
        return std::move(*l);
      }
      hs = std::move(got).value();
    }
    return from_snapshot(id, hs);
  }

  // The state the head commit carries, when it is in this repository's schema and decodes.
  std::optional<loaded<A>> carried_state(const commit_head& h) const {
    if (h.state_schema != snapshot_schema_ || h.body.empty()) return std::nullopt;
    auto state = from_json<A>("state", h.body);
    if (!state) return std::nullopt;
    return loaded<A>{std::move(state).value(), h.version, h.sequence};
  }

  // A snapshot at the head that agrees on the version is the whole load; one behind it is caught
  // up from the stream; anything else (or a catch-up that does not add up) replays it all.
  result<loaded<A>> from_snapshot(std::string_view id, const event_store::head_and_snapshot& hs) {
    std::optional<loaded<A>> base;
    const auto& s = hs.snap;
    if (s && s->schema == snapshot_schema_ && s->sequence <= hs.head->sequence) {
      auto state = from_json<A>("state", s->body);
      if (state) base = loaded<A>{std::move(state).value(), s->version, s->sequence};
      if (base && s->sequence == hs.head->sequence && s->version == hs.head->version)
        return std::move(*base);
      if (s->sequence == hs.head->sequence) base.reset();  // disagrees: replay it all
    }
    if (base) {
      bool mismatch = false;
      auto r = replay_into(id, *base, mismatch);
      if (r) return std::move(*base);
      if (!mismatch) return std::move(r).error();
    }
    return replay_all(id);
  }

  result<loaded<A>> replay_all(std::string_view id) {
    loaded<A> fresh;
    bool mismatch = false;
    auto r = replay_into(id, fresh, mismatch);
    if (!r) return std::move(r).error();
    return fresh;
  }

  /// Applies the aggregate's commits after `base` (from its sequence up to the stream's head) to
  /// it, each as it arrives. Returns how many there were. `mismatch` is set when the commits do
  /// not continue `base` (undecodable, versions that do not add up, a head before it): `base` is
  /// then partly updated and must be dropped.
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

  event_store& store_;
  std::uint64_t snapshot_every_;
  int snapshot_schema_;
  std::size_t head_state_max_;
  std::atomic<bool> heads_carry_state_;
};

}  // namespace jetsource::detail
