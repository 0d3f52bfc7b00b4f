// detail: how one copy of a read model is tied to its stream and its durable consumer. The
// database file's own mark is the truth (issue 10): each copy has a consumer of its own, a
// consumer is used only when it delivers exactly what follows the file's mark, and a file is
// never applied onto a stream other than the one it was built from.
#pragma once

#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>

#include "nats/handles.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace jetsource::detail {

/// The durable consumer of this copy of the read model: `o.consumer` when given, else
/// "jetsource-<name>-<copy id>", the copy id (random, 8 hex digits) kept in <database>.consumer
/// beside the file. `create`: make the id on first use (writers); false: nullopt when none yet.
result<std::optional<std::string>> copy_consumer(const projection& p, const projector_options& o,
                                                 bool create);

/// What identifies a stream's history: it is created once and only grows.
struct stream_identity {
  std::int64_t created = 0;  ///< ns since the epoch (jsStreamInfo.Created)
  std::uint64_t last_sequence = 0;
  std::string filter_all;  ///< its single subject when it has exactly one ("orders.>")
};
/// errc::not_found when the stream does not exist; errc::unreachable without JetStream.
result<stream_identity> identify_stream(connection_state& c, const std::string& stream);

/// errc::stream_config_mismatch when a file built up to `max_sequence` from a stream created at
/// `recorded` (0: not recorded yet) cannot continue on the stream as it is now.
result<void> check_stream(const projection& p, const std::string& stream, std::int64_t recorded,
                          std::uint64_t max_sequence, const stream_identity& now);

/// True when the consumer delivers exactly what follows a file whose every message up to
/// `applied` is committed: it has acknowledged nothing beyond `applied`, and a consumer that has
/// acknowledged nothing yet starts at `applied` + 1.
bool consumer_follows(const jsConsumerInfo& ci, std::uint64_t applied);

/// Messages of the stream after `applied` that the projection follows: its lag.
result<std::uint64_t> messages_after(connection_state& c, const std::string& stream,
                                     const stream_identity& s, const std::string& filter,
                                     std::uint64_t applied);

}  // namespace jetsource::detail
