// The projector: runs one projection live. One durable pull consumer, exactly ONE fetcher
// thread, W keyed workers (hash(aggregate id) % W, so one aggregate's events apply in order),
// group commits into the projection's own SQLite file with the dedup rows, acks after commit.
//
// Thread-safety: all members may be called from any thread. Several projectors in one process
// are independent (each sees every event of its subjects).
//
// clang-format off
//   auto p = jetsource::projector::start(rt->conn, order_summary(),
//                                        {.stream = "ORDERS", .database = "data/order_summary.db"});
//   auto r = orders.execute("ord-42", place_order{});
//   p->wait_for(r->sequence, 5s);  // read-your-writes
//   p->stop();                     // drain, commit, ack, close
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/metrics.hpp>
#include <jetsource/projection.hpp>
#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource {

/// The SQLite settings a projection database runs with by default: WAL, synchronous=NORMAL
/// (durable against a process crash), 64 MiB page cache, 1 KiB pages, checkpoint every 40k
/// pages — measured fastest for random upserts over many aggregates (docs/performance.md).
sqlite::options projection_sqlite_options();

struct projector_options {
  std::string stream;              ///< the stream to follow (required)
  std::filesystem::path database;  ///< the projection's SQLite file (required)
  std::string consumer;            ///< durable consumer name; default "jetsource-<name>"
  /// keyed workers (W); measured: 1 fastest (one SQLite writer), docs/performance.md
  int workers = 1;
  int batch = 500;  ///< messages per pull request (two requests in flight)
  std::chrono::milliseconds pull_expires{500};  ///< how long a pull request waits for messages
  std::size_t max_group = 2000;                 ///< messages per transaction, at most
  std::size_t max_buffered = 20000;             ///< fetched but not committed (also MaxAckPending)
  std::chrono::milliseconds ack_wait{10000};    ///< the server redelivers unacked messages after
  /// stop(): how long the fetcher and the workers together may take to commit what they hold;
  /// what is not committed by then is not acked (the server delivers it again later).
  std::chrono::milliseconds drain_timeout{10000};
  /// start(): PRAGMA quick_check over the whole file first, so a damaged page stops the start
  /// (errc::corrupt) before anything is applied. Reads every page: ~0.4 s for a 160 MB file
  /// (1M rows) here, docs/operations.md.
  bool check_at_start = true;
  /// start(): how long it keeps asking when JetStream does not answer (errc::timeout or
  /// errc::unreachable: a cluster electing a leader after a node died takes seconds) before it
  /// fails with that error. 0: fail on the first.
  std::chrono::milliseconds start_patience{30000};
  /// A new consumer gets AckPolicy All: the fetcher sends one ack per advance of the applied
  /// mark instead of one per message (measured: docs/performance.md). false: AckPolicy Explicit,
  /// an ack per message after its commit. An existing consumer keeps the policy it was created
  /// with.
  bool cumulative_acks = true;
  /// A new consumer is kept in the servers' memory (MemoryStorage, with the stream's replicas)
  /// rather than on their disks: for a consumer whose loss costs nothing, as its position is the
  /// database's mark (a consumer gone after a server restart is made again from it; duplicates
  /// are skipped). jetsource::rebuild sets it for its replay: the server then writes no consumer
  /// state (+5.5 % on a raw pull-and-apply loop's rate, docs/performance.md). An existing
  /// consumer keeps its storage.
  bool consumer_in_memory = false;
  /// A new consumer gets AckPolicy None: nothing is acknowledged and the server keeps no record
  /// of what is in flight, the database's mark being the only position. Deliveries lost on the
  /// way (a reconnect, a slow client) are found by the consumer's numbering, or, when the last
  /// ones go, by its delivered count staying above what arrived (checked each second by the
  /// watcher); the consumer is then made again from the mark. jetsource::rebuild sets it for its
  /// replay (docs/performance.md). Overrides cumulative_acks for a new consumer; an existing one
  /// keeps its policy.
  bool unacknowledged = false;
  sqlite::options sqlite = projection_sqlite_options();
  /// Called on a worker thread after each group commit, with the stream sequences it committed
  /// (applied, skipped as duplicates, or dead-lettered): for metrics. Keep it cheap.
  std::function<void(std::span<const std::uint64_t>)> on_committed;
  /// Called on the fetcher thread with the stream sequence of each delivery as it goes to its
  /// worker: for latency tracing (jetsource-bench soak). Keep it very cheap.
  std::function<void(std::uint64_t)> on_fetched;
  /// where the projection's jetsource_projection_* series are reported, read at each scrape
  /// (docs/operations.md, "Metrics"); nullptr: nowhere
  metrics::registry* metrics = &metrics::default_registry();
};

/// One projection's state, for status commands (`projections status --json`).
struct projection_status {
  std::string name;
  int version = 0;           ///< the projection's declared version
  int database_version = 0;  ///< the version its database was built with
  std::string consumer;      ///< its durable consumer
  std::string database;      ///< its SQLite file
  std::string state;         ///< "live", "stopped", "rebuilding", "not built", "failed" (see error)
  std::string error;  ///< why it is "failed" ("corrupt: rebuild needed: ...", a stream created
                      ///< again): "" otherwise
  std::uint64_t last_applied_seq = 0;  ///< every message at or below it is applied
  std::uint64_t max_applied_seq = 0;   ///< the highest sequence committed
  std::uint64_t pending = 0;           ///< lag: messages it follows after last_applied_seq
  std::uint64_t events_applied = 0;    ///< events committed (skipped types included)
  double events_per_s = 0;             ///< recent apply rate
  std::uint64_t dead_letters = 0;      ///< dead-letter rows (poison + parked)
  std::uint64_t held = 0;              ///< messages waiting for an earlier version to arrive
  std::uint64_t duplicates = 0;        ///< redelivered messages skipped since start
  /// The Es-Timestamp (writer's clock, RFC 3339 UTC) of the newest commit applied: "" when none
  std::string applied_event_time;
  /// lag in seconds: now minus applied_event_time while messages are pending; 0 when none are
  /// pending (caught up), and when nothing was applied yet (no time to measure from)
  double lag_seconds = 0;
  /// "" (none), "running", "ready" (waits to be adopted) or "interrupted" (killed: run rebuild
  /// again to resume it)
  std::string rebuild;
  std::uint64_t rebuild_applied_seq = 0;  ///< how far the rebuild's new file is
};

/// A dead-lettered message (see migrations/jetsource/0001_projection_state.sql).
struct dead_letter {
  std::uint64_t sequence = 0;
  std::string aggregate_type, aggregate_id;
  std::uint64_t first_version = 0, last_version = 0;
  std::string kind;        ///< "poison" (it failed) or "parked" (waits behind a poison one)
  std::string event_type;  ///< the event type that failed ("" when parked)
  std::string error;       ///< why ("" when parked)
  std::string subject;
  int attempts = 0;
  std::string first_failed_at, last_failed_at;  ///< UTC ISO 8601
};

namespace detail {
struct projector_state;
}

class projector {
 public:
  /// Opens (creating and migrating) the database, creates or binds the durable consumer, and
  /// starts the fetcher and the workers. Errors: errc::invalid_argument (bad options or name),
  /// a migration error (e.g. checksum drift), errc::stream_config_mismatch (the consumer
  /// exists with another subject filter), errc::corrupt (the database file is damaged: rebuild
  /// it; the message says "rebuild needed"), NATS errors.
  static result<projector> start(const connection& conn, projection p, projector_options o);

  projector(projector&&) noexcept;
  projector& operator=(projector&&) noexcept;
  projector(const projector&) = delete;
  projector& operator=(const projector&) = delete;
  /// Stops (as stop()) if still running.
  ~projector();

  /// Stops fetching, drains the workers, commits, acks and closes, within drain_timeout.
  /// Messages not committed by then are not acked (the server redelivers them).
  result<void> stop();

  /// Waits until every message up to stream sequence `sequence` is applied (read-your-writes:
  /// pass the sequence an append returned). errc::timeout when it is not applied in time.
  result<void> wait_for(std::uint64_t sequence, std::chrono::milliseconds timeout);

  /// The projection's status; `pending` asks the server (one round trip).
  result<projection_status> status() const;

  /// Why the projection stopped applying by itself, if it did: errc::corrupt (its database
  /// file is damaged: "rebuild needed: ...") or errc::stream_config_mismatch (its stream was
  /// deleted and created again). Logged once. It then fetches, applies and acks nothing more;
  /// stop() and a rebuild (adopt_rebuild()) still work. Cheap: no I/O.
  std::optional<error> failure() const;

  /// The dead letters, oldest first.
  result<std::vector<dead_letter>> dead_letters() const;
  /// Re-applies one aggregate's dead letters in order (after fixing the handler); returns how
  /// many remain (0: the aggregate flows again).
  result<std::size_t> retry(std::string_view aggregate_type, std::string_view aggregate_id);
  /// Counts the aggregate's poison message as applied without running it, then retries the
  /// rest; returns how many remain.
  result<std::size_t> skip(std::string_view aggregate_type, std::string_view aggregate_id);

  /// Switches to a rebuilt database if a rebuild finished while this projector ran (see
  /// jetsource/rebuild.hpp): stops, brings the rebuilt file up to this projector's position,
  /// points the database at it and carries on live from there. Queries opening the database
  /// see the old file until the switch and the rebuilt one after it. Call it from the thread
  /// that owns the projector (e.g. every 250 ms in a serve loop). True when it switched.
  result<bool> adopt_rebuild();

  const std::string& name() const noexcept;

 private:
  explicit projector(std::unique_ptr<detail::projector_state> s) noexcept;
  std::unique_ptr<detail::projector_state> state_;
};

/// The file a projection database path currently points to (a rebuild switches it).
std::filesystem::path current_file(const std::filesystem::path& database);

/// Opens the current file of a projection database read-only, for queries (open one per query
/// or per request to follow rebuild switches).
result<sqlite::database> open_read_model(const std::filesystem::path& database);

/// The version the database at `database` was built with (errc::not_found when it does not
/// exist or has no row for the projection).
result<int> built_version(const std::filesystem::path& database, std::string_view projection_name);

/// The dead letters of a projection database, oldest first (works while a projector runs on it,
/// from any process).
result<std::vector<dead_letter>> read_dead_letters(sqlite::database& db);

/// The status kept in a projection database (any process; `pending` and `held` are 0: ask the
/// running projector or the consumer for those; `lag_seconds` is the age of the newest applied
/// event, which the calls that know `pending` set to 0 when nothing is pending).
result<projection_status> read_status(sqlite::database& db, std::string_view projection_name);

/// The status of a projection from any process: its database, its lag (messages it follows
/// after the file's own mark) and any rebuild in progress. A database not built yet reads as
/// state "not built"; one no projector runs on as "stopped"; one whose stream was created again
/// as "failed" (with `error`). A file that cannot be read, or a server without JetStream, is an
/// error.
result<projection_status> read_status(const connection& conn, const projection& p,
                                      const projector_options& o);

/// Read-your-writes from another process than the projector's: waits until the database at
/// `path` records `sequence` as applied (polling; the projector records it within ~100 ms of
/// the commit). errc::timeout when it does not in time.
result<void> wait_applied(const std::filesystem::path& path, std::string_view projection_name,
                          std::uint64_t sequence, std::chrono::milliseconds timeout);

/// How a dead-letter repair asked for from any process went (request_retry / request_skip).
struct dead_letter_repair {
  std::size_t remaining = 0;  ///< the aggregate's dead letters left (0: it flows again)
  /// true: the projector running on the database did it; false: this call did (none ran)
  bool by_running_projector = false;
};

/// projector::retry() from any process: re-applies one aggregate's dead letters in the
/// projection database of `o.database`. When no projector runs on the database, it is done here
/// (holding the database's lock meanwhile); when one runs (in any process), the request is
/// handed to it through <db>.requests/ (it looks every 250 ms) and its answer is waited for, up
/// to `timeout`. Errors: errc::not_found (no database, or the aggregate has no dead letters),
/// errc::timeout (not answered in time: a request the projector had not taken is withdrawn, one
/// it had taken may still be carried out), the repair's own errors.
result<dead_letter_repair> request_retry(
    const projection& p, const projector_options& o, std::string_view aggregate_type,
    std::string_view aggregate_id, std::chrono::milliseconds timeout = std::chrono::seconds(30));
/// projector::skip() from any process, as request_retry(): counts the aggregate's poison message
/// as applied without running it, then retries the rest.
result<dead_letter_repair> request_skip(
    const projection& p, const projector_options& o, std::string_view aggregate_type,
    std::string_view aggregate_id, std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Blocks SIGINT and SIGTERM in the calling thread (call it first in main, before any thread
/// starts, so every thread inherits the mask), so that wait_for_termination() receives them.
void block_termination_signals();
/// Waits for SIGINT or SIGTERM (blocked by block_termination_signals()); returns the signal.
int wait_for_termination();

}  // namespace jetsource
