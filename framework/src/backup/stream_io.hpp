// detail: what backup and restore ask the server: a stream's configuration and last sequence,
// one message by sequence, a message's headers.
#pragma once

#include <jetsource/backup.hpp>
#include <jetsource/result.hpp>

#include "nats/handles.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jetsource::detail::backup {

/// A stream's recorded configuration and state.
struct stream_state {
  backup_stream_config config;
  std::uint64_t first_sequence = 0, last_sequence = 0, messages = 0;
};

/// The stream's info: nullopt when there is no such stream. errc::invalid_argument when it is
/// not a jetsource event stream (one subject <prefix>.>, the partitions in its description).
result<std::optional<stream_state>> stream_info(jsCtx* js, const std::string& stream);

/// The message at `seq` of `stream` (nullptr when there is none): a plain JetStream get, which
/// needs no direct gets.
result<msg_ptr> message_at(jsCtx* js, const std::string& stream, std::uint64_t seq);

/// What identifies a commit across a backup and a restore: its Nats-Msg-Id, or its Es-Commit-Id
/// when it has none (a generated commit id, ADR 0019).
std::string identity_of(natsMsg* m);

/// Every header of a message, sorted by key (a key's values in their order).
std::vector<std::pair<std::string, std::string>> headers_of(natsMsg* m);

}  // namespace jetsource::detail::backup
