// detail: applying commit messages to a projection's database: dedup (last applied version per
// aggregate), version-gap holding, dead letters, group commit. No NATS here: the projector's
// workers feed it messages from the stream, the testing helper feeds it encoded commits.
//
// One applier per worker thread; an aggregate always goes to the same applier, so the cached
// versions and parked aggregates it keeps are authoritative for the aggregates it sees.
#pragma once

#include <jetsource/projection.hpp>
#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

#include "version_cache.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace jetsource::detail {

/// One commit message as it arrived. The views point into storage `owner` keeps alive (the
/// natsMsg, or strings for the testing helper and dead-letter retries).
struct envelope {
  std::uint64_t sequence = 0;  ///< stream sequence
  std::string_view subject;
  std::string_view aggregate_type, aggregate_id;
  std::uint64_t version = 0;        ///< Es-Version: the aggregate's version after this commit
  std::uint64_t first_version = 0;  ///< version of its first event
  std::string_view event_types;     ///< Es-Events
  std::string_view msg_id;          ///< Nats-Msg-Id
  std::string_view timestamp;       ///< Es-Timestamp ("" when absent)
  std::string_view correlation_id, causation_id;  ///< Es-Correlation-Id, Es-Causation-Id
  std::string_view body;
  std::string malformed;        ///< non-empty: the headers do not describe a commit (poison)
  const char* reply = nullptr;  ///< where to ack, in the message (null: not from a consumer)
  std::unique_ptr<void, void (*)(void*)> owner{nullptr, [](void*) {}};
};

/// Owned copies of a commit's fields, for envelopes that do not come from a natsMsg (dead-letter
/// retries, the testing helper). Not jetsource::stored_commit (a commit read by the event store).
struct owned_commit {
  std::string subject, type, id, events, msg_id, version, body;
  /// An envelope viewing these strings (which must outlive it), described from them.
  envelope view(std::uint64_t sequence) const;
};

/// Fills the commit fields of `e` from its headers (Es-Version, Es-Events, ...), setting
/// `malformed` when they do not add up; type and id fall back to the subject's tokens.
void describe(envelope& e, std::string_view type_header, std::string_view id_header,
              std::string_view version_header);

/// A message one group commit settled: its stream sequence and where to ack it (in the message,
/// which its envelope keeps: the batch's until the worker takes its next batch, a held one's in
/// batch_outcome::released).
struct settled {
  std::uint64_t sequence = 0;
  const char* reply = nullptr;
};

/// What one group commit did.
struct batch_outcome {
  std::vector<settled> done;       ///< committed (applied, duplicate or dead-lettered): ack these
  std::vector<envelope> released;  ///< held messages it settled, kept alive for their acks
  std::uint64_t events = 0;        ///< events applied (skipped types included)
  std::uint64_t duplicates = 0;    ///< skipped: applied before
  std::uint64_t dropped = 0;       ///< held copies replaced by a redelivery of the same message
};

/// Transient: worth retrying the whole batch after a backoff (SQLite busy, I/O, a full disk).
/// A damaged file (errc::corrupt) is not: retrying it would block the projection for good.
bool is_transient(const error& e) noexcept;
/// A failure of the database rather than of the message (transient, or a damaged file): never a
/// reason to dead-letter the message.
bool not_the_message(const error& e) noexcept;

/// Hash and equality that also take a string_view: the maps below are looked up with a key
/// built in a reused buffer, without allocating. Deliberately not noexcept: libstdc++ then keeps
/// each node's hash code, so a lookup compares codes instead of hashing every other key of the
/// bucket again through its heap-allocated string. (The per-message version lookup no longer
/// uses these maps: version_cache.hpp.)
struct key_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const {  // NOLINT(performance-noexcept-*)
    return std::hash<std::string_view>{}(s);
  }
};
template <class V>
using key_map = std::unordered_map<std::string, V, key_hash, std::equal_to<>>;
using key_set = std::unordered_set<std::string, key_hash, std::equal_to<>>;

class applier {
 public:
  /// `projection_name` names the projection_state row each commit updates.
  explicit applier(const projection& p, std::size_t max_cached_versions = 200'000)
      : projection_(p), max_cached_(max_cached_versions) {}

  /// Loads the parked aggregates (those with dead letters) that `mine` accepts.
  result<void> load_parked(sqlite::database& db,
                           const std::function<bool(std::string_view id)>& mine);

  /// One group commit: applies `batch` (and held messages it unblocks) in one transaction with
  /// the dedup rows and the projection_state update (`applied_sequence` is the projector's
  /// mark), then commits. Messages with a version gap are held, not acked. On error nothing
  /// changed (the transaction rolled back, `batch` is intact): retry after a backoff when
  /// is_transient(); errc::corrupt means the file is damaged (stop); otherwise it is a bug.
  result<batch_outcome> apply(sqlite::database& db, std::vector<envelope>& batch,
                              std::uint64_t applied_sequence = 0);

  /// Re-applies the dead letters of one aggregate in sequence order (after the handler was
  /// fixed); `skip_first` counts the first (poison) one as applied without running it. Returns
  /// how many dead letters remain for it.
  result<std::size_t> retry(sqlite::database& db, std::string_view aggregate_type,
                            std::string_view aggregate_id, bool skip_first);

  /// Messages held back because an earlier version of their aggregate has not arrived.
  std::size_t held() const noexcept { return held_count_; }
  /// Calls `f` on every held message, then forgets them (they stay unacked).
  void release_held(const std::function<void(const envelope&)>& f);
  bool parked(std::string_view aggregate_type, std::string_view aggregate_id) const;

 private:
  struct pass;  // the staged state of one transaction (below)
  /// Applies one message (and the held ones it unblocks), or dead-letters, holds or skips it.
  result<void> process(pass& p, envelope& e);
  /// Settles a message that is not the next of its aggregate (last applied `v0`): a duplicate is
  /// done, a parked aggregate's is dead-lettered, a gap holds it, an overlap is poison. False: it
  /// is the next one, to run.
  result<bool> settle_if_not_next(pass& p, envelope& e, std::string_view key, std::uint64_t v0);
  /// Runs the message (in its savepoint on a guarded pass). False: it was poison, dead-lettered
  /// with its aggregate parked. An unguarded pass fails instead and asks for a guarded one.
  result<bool> run_message(pass& p, envelope& e, std::string_view key, std::uint64_t v0);
  /// Runs the handlers (a throw is an error) and records the aggregate's new version (its
  /// last applied one was `v0`).
  result<void> run_and_record(pass& p, const envelope& e, std::string& failed_type,
                              std::uint64_t v0);
  /// Dead-letters, in order, the messages held behind a parked aggregate.
  result<void> park_waiting(pass& p, std::string_view key);
  /// Processes the held message that follows version `v` of the aggregate, if it is waiting.
  result<void> process_waiting(pass& p, std::string_view key, std::uint64_t v);
  static bool taken(const pass& p, std::string_view key, std::uint64_t first);
  result<batch_outcome> finish(pass& p, sqlite::transaction& tx, std::uint64_t applied_sequence);
  /// The cached last applied version of `key` (read from applied_versions on a miss). The
  /// pointer stays valid for the transaction: versions_ is cleared only between transactions,
  /// and each transaction first makes room for the keys it may add (version_cache::reserve).
  result<std::uint64_t*> version_of(sqlite::transaction& tx, std::string_view key,
                                    const envelope& e);
  /// Puts back the versions a failed transaction changed.
  static void undo(pass& p);
  /// Runs the handlers of the commit's events. On error, `failed_type` names the event type whose
  /// decoding or handler failed ("" when the body as a whole is unreadable): it is kept beside
  /// the error, not parsed back out of its message.
  result<void> run_handlers(projection_context& cx, const envelope& e, std::string& failed_type);
  result<void> dead_letter(pass& p, const envelope& e, std::string_view kind,
                           std::string_view event_type, std::string_view error);

  const projection& projection_;
  std::size_t max_cached_;
  version_cache versions_;  // key -> last applied version (committed, or in the open
                            // transaction, with its undo log in the pass)
  // applied_versions was empty when this applier first looked, and versions_ was never cleared
  // since: every row of its aggregates was written through versions_, so a key missing there
  // has no row (version 0) and is not looked up (a fresh projection or a rebuild: one query
  // per aggregate less). Only the applier of an aggregate writes its row (retries included).
  bool complete_ = false;
  bool probed_ = false;
  key_set parked_;  // keys with dead letters
  // key -> first_version -> the held message
  key_map<std::map<std::uint64_t, envelope>> held_;
  std::size_t held_count_ = 0;
  std::string key_;  // the current message's key (aggregate_key), reused
};

/// The staged state of one transaction of an applier (apply and retry).
struct applier::pass {
  sqlite::transaction& tx;
  std::string now;
  // Each message in its own SAVEPOINT, so a poison one is rolled back alone. The first pass
  // over a batch runs without (two statements less per message); a poison message makes it
  // roll back and run the batch again guarded.
  bool guarded = true;
  bool needs_guard = false;
  // Versions written in this transaction (in versions_): the slot and its value before.
  std::vector<std::pair<std::uint64_t*, std::uint64_t>> undo;
  key_set parked;  // parked in this transaction
  std::vector<envelope*> done;
  // staged holds: key -> first_version -> message (from the batch)
  key_map<std::map<std::uint64_t, envelope*>> hold;
  std::vector<std::pair<std::string, std::uint64_t>> taken;  // held_ entries now done
  std::vector<std::string> new_dead;  // what to log of each new dead letter, once committed
  // Applied messages whose aggregate's new version is still to be written to applied_versions
  // (with the version its row held before), in the order they were applied: written together
  // before the commit (write_versions), not one statement per message.
  std::vector<std::pair<const envelope*, std::uint64_t>> recorded;
  std::uint64_t events = 0, duplicates = 0, max_sequence = 0;
};

// Each message of a guarded pass (and of a retry) runs in this savepoint: a poison one is undone
// alone.
inline constexpr std::string_view message_savepoint = "jetsource_message";

inline constexpr std::string_view upsert_version =
    "INSERT INTO applied_versions (aggregate_type, aggregate_id, version, sequence) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (aggregate_type, aggregate_id) "
    "DO UPDATE SET version = excluded.version, sequence = excluded.sequence";

/// Records `e.version` (and its sequence) as the last applied version of its aggregate, whose
/// row held `v0` (0: no row yet). A known row is updated in place, which costs SQLite less than
/// the upsert; should it be missing after all, the upsert writes it.
result<void> record_version(sqlite::transaction& tx, const envelope& e, std::uint64_t v0);

/// Records the versions of `rows` (message, version its row held before), in order: 64 at a
/// time in one multi-row upsert (a later row of the same aggregate updates the earlier one),
/// the rest one by one (record_version).
result<void> write_versions(sqlite::transaction& tx,
                            const std::vector<std::pair<const envelope*, std::uint64_t>>& rows);

/// Applies jetsource's and the projection's migrations to `db` and makes sure the projection's
/// projection_state row exists; returns the version the database was built with.
result<int> prepare_database(sqlite::database& db, const projection& p, std::string_view stream,
                             std::string_view consumer);

/// "Type\x1fid": the key of an aggregate in the maps above.
std::string aggregate_key(std::string_view type, std::string_view id);
/// The same, written into `out` (its capacity is reused).
void aggregate_key(std::string& out, std::string_view type, std::string_view id);

/// UTC now as ISO 8601 with milliseconds.
std::string utc_now();

}  // namespace jetsource::detail
