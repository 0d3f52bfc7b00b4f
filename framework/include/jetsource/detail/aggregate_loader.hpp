// detail: how a repository reads an aggregate: the head and its snapshot asked for at once, then
// the commits after the snapshot (or all of them) replayed; catching a cached copy up; writing a
// snapshot when the version passes a multiple of `snapshot_every` (ADR 0017).
//
// Thread-safety: stateless beyond its settings; callers own the copies they pass in.
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/detail/codec.hpp>
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace jetsource::detail {

template <aggregate A>
class aggregate_loader {
 public:
  using registry = event_registry<typename A::event>;

  /// `snapshot_every` 0: never read nor write snapshots.
  aggregate_loader(event_store& store, std::uint64_t snapshot_every, int snapshot_schema)
      : store_(store), snapshot_every_(snapshot_every), snapshot_schema_(snapshot_schema) {}

  /// The aggregate as the stream has it (a new, empty one when it has no commit). With
  /// snapshots, a snapshot at the head is the whole load; one that does not fit the stream is
  /// ignored (correctness never depends on it).
  result<loaded<A>> load(std::string_view id) {
    std::optional<loaded<A>> base;
    if constexpr (snapshottable<A>) {
      if (snapshot_every_ > 0) {
        auto hs = store_.load_head_and_snapshot(A::type_name, id);
        if (!hs) return std::move(hs).error();
        if (!hs->head) return loaded<A>{};  // no commit: a new aggregate
        const auto& s = hs->snap;
        if (s && s->schema == snapshot_schema_ && s->sequence <= hs->head->sequence) {
          auto state = from_json<A>("state", s->body);
          if (state) base = loaded<A>{std::move(state).value(), s->version, s->sequence};
          // At the head: nothing to read, as long as the head agrees on the version.
          if (base && s->sequence == hs->head->sequence && s->version == hs->head->version)
            return std::move(*base);
          if (s->sequence == hs->head->sequence) base.reset();  // disagrees: replay it all
        }
      }
    }
    if (base) {
      bool mismatch = false;
      auto r = replay_into(id, *base, mismatch);
      if (r) return std::move(*base);
      if (!mismatch) return std::move(r).error();
    }
    loaded<A> fresh;
    bool mismatch = false;
    auto r = replay_into(id, fresh, mismatch);
    if (!r) return std::move(r).error();
    return fresh;
  }

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
};

}  // namespace jetsource::detail
