// detail: consumer administration for the read side, shared by the projector and the rebuild:
// the names of a read-model copy's consumers, creating, binding, verifying and deleting them,
// and how one copy of a read model is tied to its stream. The database file's own mark is the
// truth (issue 10): each copy has a consumer of its own, a consumer is used only when it
// delivers exactly what follows the file's mark, and a file is never applied onto a stream
// other than the one it was built from.
//
// Thread-safety: free functions; each call makes its own JetStream API requests.
#pragma once

#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>

#include "nats/handles.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace jetsource::detail {

/// The durable consumer of this copy of the read model: `o.consumer` when given, else
/// "jetsource-<name>-<copy id>", the copy id (random, 8 hex digits) kept in <database>.consumer
/// beside the file. `create`: make the id on first use (writers); false: nullopt when none yet.
result<std::optional<std::string>> copy_consumer(const projection& p, const projector_options& o,
                                                 bool create);
/// The live consumer's name (this copy's), and its rebuild's ("<live>-rebuild").
result<std::string> live_consumer(const projection& p, const projector_options& o);
result<std::string> rebuild_consumer(const projection& p, const projector_options& o);

/// What a durable consumer of the read side is made of (a projection's, a reactor's cursor or
/// queue).
struct consumer_spec {
  std::string name;
  std::string filter;  ///< "" = the whole stream
  jsAckPolicy ack_policy = js_AckAll;
  std::uint64_t start = 1;  ///< the first stream sequence it delivers
  std::chrono::milliseconds ack_wait{30000};
  std::int64_t max_ack_pending = 0;                ///< 0: the server's default
  std::chrono::milliseconds inactive_threshold{};  ///< 0: never deleted for inactivity
  const char* description = "jetsource projection";
  std::string owner;  ///< for errors: "projection X" / "reactor X"
  /// One replica in memory, whatever the stream's replicas: for a consumer whose state the
  /// engine keeps elsewhere and remakes when it is gone (a reactor cursor).
  bool disposable = false;
  /// In memory (MemoryStorage) with the stream's replicas: for a consumer the engine makes again
  /// from its own mark when it is gone (a rebuild's replay).
  bool in_memory = false;
  /// How long to wait for the server's answer; 0: the connection's request timeout.
  std::chrono::milliseconds request_timeout{};
};
/// Creates a durable consumer as `spec` says.
result<void> create_consumer(connection_state& c, const std::string& stream,
                             const consumer_spec& spec);

/// How a projection's consumer is acknowledged.
enum class ack_mode {
  each,        ///< AckPolicy Explicit: one ack per message, after its commit
  cumulative,  ///< AckPolicy All: the fetcher acks the applied mark
  none,        ///< AckPolicy None: nothing is acked; the database's mark is the only position
};
/// What a new consumer gets from the options (unacknowledged, cumulative_acks).
ack_mode ack_mode_for(const projector_options& o);

/// Creates the projection's durable consumer, delivering from stream sequence `from` (1: all),
/// acked as `acks` says.
result<void> create_consumer(connection_state& c, const std::string& stream,
                             const std::string& name, const projection& p,
                             const projector_options& o, ack_mode acks, std::uint64_t from);
/// Deletes a durable consumer; a missing one is fine.
result<void> delete_consumer(connection_state& c, const std::string& stream,
                             const std::string& consumer,
                             std::chrono::milliseconds request_timeout = {});
/// The consumer's info (errc::not_found when it does not exist); `holder` owns it.
result<jsConsumerInfo*> consumer_info(connection_state& c, const std::string& stream,
                                      const std::string& consumer, consumer_info_ptr& holder);

/// True when the consumer's info says it has nothing left to deliver or to be acknowledged
/// (NumPending and NumAckPending both 0) and the answer knows: on a stream of a clustered server
/// (`si` has a cluster name) only its leader's answer counts, one that names a leader.
/// nats-server 2.9.10 answers for a consumer still without a leader (just created during an
/// election) with its config and zeroed state: "nothing pending" there means nothing.
bool consumer_drained(const jsStreamInfo& si, const jsConsumerInfo& ci);

/// What the consumer still has to deliver or to have acknowledged (NumPending + NumAckPending),
/// when its answer can tell: on a clustered server only an answer that names the consumer's
/// leader; nullopt for the zeroed answer of a consumer without a leader (an election), which
/// would read as "caught up".
std::optional<std::uint64_t> trusted_backlog(bool clustered, const jsConsumerInfo& ci);

/// True when the consumer delivers exactly what follows a file whose every message up to
/// `applied` is committed: it has acknowledged nothing beyond `applied`, and a consumer that has
/// acknowledged nothing yet starts at `applied` + 1. (With AckPolicy None the server moves the
/// ack floor to each delivery: one that delivered past the mark does not follow it.)
bool consumer_follows(const jsConsumerInfo& ci, std::uint64_t applied);

/// Binds to `consumer` when it follows the file's mark `applied` (see consumer_follows), and
/// (re)creates it from applied + 1 otherwise. Returns how it is acked (an existing consumer
/// keeps its policy). errc::stream_config_mismatch when it exists with another subject filter.
result<ack_mode> bind_consumer(connection_state& c, const std::string& consumer,
                               const projection& p, const projector_options& o,
                               std::uint64_t applied);

/// What identifies a stream's history: it is created once and only grows.
struct stream_identity {
  std::int64_t created = 0;  ///< ns since the epoch (jsStreamInfo.Created)
  std::uint64_t last_sequence = 0;
  std::string filter_all;  ///< its single subject when it has exactly one ("orders.>")
  bool clustered = false;  ///< its server is in a cluster (the info names one)
};
/// errc::not_found when the stream does not exist; errc::unreachable without JetStream.
result<stream_identity> identify_stream(connection_state& c, const std::string& stream);

/// errc::stream_config_mismatch when a file built up to `max_sequence` from a stream created at
/// `recorded` (0: not recorded yet) cannot continue on the stream as it is now.
result<void> check_stream(const projection& p, const std::string& stream, std::int64_t recorded,
                          std::uint64_t max_sequence, const stream_identity& now);

/// Messages of the stream after `applied` that the projection follows: its lag.
result<std::uint64_t> messages_after(connection_state& c, const std::string& stream,
                                     const stream_identity& s, const std::string& filter,
                                     std::uint64_t applied);

}  // namespace jetsource::detail
