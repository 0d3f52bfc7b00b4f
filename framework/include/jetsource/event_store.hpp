// The event store: one immutable JetStream stream per bounded context, one subject per
// aggregate, one message per commit (its 1..N events land all or none).
//
// Subjects are <prefix>.<AggregateType>.<partition>.<aggregateId>, partition = FNV-1a-32(id) %
// partitions. Headers and body are the public wire format: docs/wire-format.md.
//
// Thread-safety: an event_store is safe to use from many threads at once (sync and async
// appends, reads). Async outcome callbacks run on a nats.c thread: keep them short.
//
// clang-format off
//   auto store = jetsource::event_store::open(conn, {.stream = "ORDERS",
//                                                    .subject_prefix = "orders"});
//   auto r = store->append({.aggregate_type = "Order", .aggregate_id = "ord-1",
//                           .expected_sequence = 0,  // 0: the aggregate must be new
//                           .event_types = "OrderCreated",
//                           .body = body});  // from event_registry<V>::encode
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource {

/// How appends keep concurrent writers of one aggregate apart (docs/adr/0015).
enum class concurrency_scheme {
  /// subject_sequence on a 1-replica stream, or when every server answering at the
  /// connection's URLs is nats-server >= 2.9.21; commit_slot otherwise.
  automatic,
  /// Nats-Expected-Last-Subject-Sequence only; Nats-Msg-Id = the commit id. Safe on R1, and on
  /// replicated streams only with nats-server >= 2.9.21 on every node (nats-server#4320).
  subject_sequence,
  /// Also a commit slot: Nats-Msg-Id = <Type>.<id>@<base version>, the commit id in
  /// Es-Commit-Id. Of two commits decided on the same version exactly one is stored, checked by
  /// every replica (safe on R3 with 2.9.10).
  commit_slot,
};

/// The stream of one bounded context, as created or verified by event_store::open.
struct store_options {
  std::string stream = "EVENTS";          ///< stream name, e.g. "ORDERS"
  std::string subject_prefix = "events";  ///< e.g. "orders": subjects orders.<Type>.<p>.<id>
  std::uint32_t partitions = 64;          ///< fixed when the stream is created; recorded with it
  int replicas = 1;                       ///< 3 on a cluster (see docs/operations.md)
  std::chrono::seconds duplicate_window{120};  ///< how long a Nats-Msg-Id retry is recognised
  std::size_t max_in_flight = 4096;            ///< async appends awaiting their ack (back-pressure)
  std::chrono::milliseconds ack_timeout{5000};  ///< per commit, sync and async
  /// Loads of 3+ commits use an ordered consumer, deleted afterwards (faster; the connection's
  /// user needs consumer create and delete rights on the stream). false: direct gets only, for
  /// a writer that may not touch consumers (docs/security.md).
  bool load_with_consumers = true;
  concurrency_scheme concurrency = concurrency_scheme::automatic;
};

/// One commit as the store writes it: the encoded events of one command.
struct commit {
  std::string aggregate_type;  ///< a subject token, e.g. "Order"
  std::string aggregate_id;    ///< a subject token, e.g. "ord-42"
  /// Optimistic concurrency: the stream sequence of the aggregate's last commit when it was
  /// loaded; 0 = the aggregate must be new; nullopt = no check.
  std::optional<std::uint64_t> expected_sequence;
  std::uint64_t version = 0;  ///< the aggregate's version after this commit (events so far)
  /// Nats-Msg-Id (Es-Commit-Id under the commit-slot scheme): a retry with the same id within
  /// the stream's duplicate window lands once. "" = generate one, carried in Es-Commit-Id only
  /// (nothing can send a generated id again, so the server is not asked to remember it; ADR 0019)
  std::string commit_id;
  std::string event_types;  ///< Es-Events: comma-separated wire names, in order
  std::string body;         ///< the encoded events (docs/wire-format.md)
  std::string content_type = "application/json";
  std::string correlation_id;  ///< optional
  std::string causation_id;    ///< optional
  /// Optional (ADR 0022): the aggregate's state after this commit, as a JSON value, and the
  /// schema it is written in (>= 1; 0 = no state). The body then also carries it, as its member
  /// "state", and the header Es-State-Schema names the schema: a reader loads the aggregate from
  /// its head alone. Left out (the commit is stored without it) when it would take the message
  /// past the server's limits; append_result::state_stored says which.
  std::string state;
  int state_schema = 0;
};

enum class append_status {
  appended,          ///< stored now
  already_appended,  ///< an earlier attempt with the same commit id had landed (idempotent retry)
};

/// The server's acknowledgement of a commit.
struct append_result {
  std::uint64_t sequence = 0;  ///< stream sequence of the commit
  std::uint64_t version = 0;   ///< aggregate version after it
  append_status status = append_status::appended;
  std::string commit_id;
  bool state_stored = false;  ///< the commit carries commit::state (appended only)
};

/// A commit read back from the stream.
struct stored_commit {
  std::uint64_t sequence = 0;  ///< stream sequence
  std::uint64_t version = 0;   ///< Es-Version
  std::string aggregate_type;
  std::string aggregate_id;
  std::string commit_id;
  std::string event_types;  ///< Es-Events
  std::string content_type;
  std::string correlation_id;
  std::string causation_id;
  std::string timestamp;  ///< Es-Timestamp (RFC 3339, UTC)
  std::string body;
  /// Number of events in this commit (from Es-Events).
  std::size_t event_count() const;
};

/// What a reader needs to know about an aggregate's last commit.
struct commit_head {
  std::uint64_t sequence = 0;
  std::uint64_t version = 0;
  std::string commit_id;
  std::size_t events = 0;  ///< events in that commit (from Es-Events)
  /// The schema of the state the commit carries (its Es-State-Schema; 0: it carries none), and
  /// then its body, whose member "state" is the aggregate's state after it (ADR 0022).
  int state_schema = 0;
  std::string body;
};

/// An aggregate's commits after some sequence, and the head they lead to.
struct commit_log {
  commit_head head;                    ///< sequence 0 = no commit at all
  std::vector<stored_commit> commits;  ///< sequence > after_sequence, <= head.sequence
};

/// A commit as event_store::replay hands it over: views into the received message, valid only
/// during the call.
struct commit_view {
  std::uint64_t sequence = 0;  ///< stream sequence
  std::uint64_t version = 0;   ///< Es-Version of the head commit; 0 (not read) for the others
  std::string_view body;
};

namespace detail {
struct store_state;
}

class event_store {
 public:
  using append_callback = std::function<void(result<append_result>)>;

  /// Creates the stream, or verifies an existing one (errc::stream_config_mismatch, naming
  /// every difference, when it was created otherwise; it is never changed silently).
  static result<event_store> open(const connection& conn, store_options options);

  /// Appends one commit and waits for the server's ack. errc::conflict when the expected
  /// sequence no longer holds; errc::timeout when no ack came (retry with the same commit_id).
  result<append_result> append(const commit& c);

  /// Starts appending one commit; `done` receives its outcome exactly once (after the server's
  /// ack, an error, or the ack timeout). Blocks while max_in_flight commits await their acks.
  /// An immediate error (invalid id, too large, closed) is returned and `done` is not called.
  result<void> append_async(commit c, append_callback done);

  /// Waits until every async append started so far has reported its outcome.
  result<void> flush(std::chrono::milliseconds timeout = std::chrono::milliseconds{30000});

  /// The last commit of an aggregate, or nullopt when it has none.
  result<std::optional<commit_head>> head(std::string_view aggregate_type,
                                          std::string_view aggregate_id);

  /// The commits of an aggregate after `after_sequence` up to its head, in order, with the
  /// head they were read up to (head.sequence == 0 when the aggregate has no commit).
  result<commit_log> read(std::string_view aggregate_type, std::string_view aggregate_id,
                          std::uint64_t after_sequence = 0);

  using commit_visitor = std::function<result<void>(const commit_view&)>;
  /// What repositories load with: the commits read() would return, handed to `visit` one by one
  /// as they arrive (in order, not copied), and the head they lead to. Only the head commit's
  /// headers are parsed (parsing a message's headers costs more than decoding its body): the
  /// caller checks the sum of the events against the head's version. Stops at the first
  /// error of `visit` and returns it.
  result<commit_head> replay(std::string_view aggregate_type, std::string_view aggregate_id,
                             std::uint64_t after_sequence, const commit_visitor& visit);

  /// Snapshots (optional, disposable): the latest state of an aggregate at a version, kept on a
  /// companion stream <stream>_SNAPSHOTS with one message per aggregate.
  struct snapshot {
    std::uint64_t version = 0;   ///< aggregate version the state includes
    std::uint64_t sequence = 0;  ///< stream sequence of the commit that produced that version
    int schema = 0;              ///< the aggregate's snapshot schema
    std::string body;
  };
  result<std::optional<snapshot>> load_snapshot(std::string_view aggregate_type,
                                                std::string_view aggregate_id);
  /// What a cold load starts with: the aggregate's head (its last commit; nullopt: none) and its
  /// snapshot (nullopt: none, or snapshots unavailable), asked for at once (two direct gets in
  /// flight: one round trip, not two).
  struct head_and_snapshot {
    std::optional<commit_head> head;
    std::optional<snapshot> snap;
  };
  result<head_and_snapshot> load_head_and_snapshot(std::string_view aggregate_type,
                                                   std::string_view aggregate_id);
  /// Stores a snapshot without waiting for its ack (failures are only logged).
  result<void> save_snapshot(std::string_view aggregate_type, std::string_view aggregate_id,
                             const snapshot& s);

  /// The subject of an aggregate: <prefix>.<Type>.<partition>.<id>.
  result<std::string> subject_of(std::string_view aggregate_type,
                                 std::string_view aggregate_id) const;
  const store_options& options() const noexcept;
  /// The scheme appends use (never automatic: what open chose).
  concurrency_scheme scheme() const noexcept;
  /// Stream sequence of the last message in the stream (0 when empty).
  result<std::uint64_t> last_sequence();

 private:
  explicit event_store(std::shared_ptr<detail::store_state> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::store_state> state_;
};

/// Validates a subject token (aggregate type or id): non-empty, at most 256 bytes, valid UTF-8,
/// no '.', '*', '>', whitespace or control characters. errc::invalid_id otherwise.
result<void> validate_token(std::string_view what, std::string_view token);

/// Validates free text that will be stored (a reason, a note): valid UTF-8, or
/// errc::invalid_argument naming `what` and the offending byte (the text itself is not echoed).
result<void> validate_utf8(std::string_view what, std::string_view text);

/// A new unique commit id (22 characters, URL- and subject-safe).
std::string new_commit_id();

/// FNV-1a 32-bit hash (as nats-server's partition() mapping uses).
std::uint32_t fnv1a32(std::string_view s) noexcept;

}  // namespace jetsource
