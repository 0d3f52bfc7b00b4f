// detail (internal target): the reader of a received commit's header block, the bytes
// "NATS/1.0\r\n" "Key: Value\r\n"... "\r\n" as they arrived, for the headers a commit needs
// (nats.c's natsMsgHeader_Get first copies every header into a hash table: a malloc each).
// A pure function of the bytes, so it is fuzzed (tests/fuzz/header_parser.cpp).
#pragma once

#include <optional>
#include <string_view>

namespace jetsource::detail {

/// The headers a commit needs; the views point into the parsed block ("" when absent).
struct commit_headers {
  std::string_view type, id, version, events, msg_id, timestamp, correlation, causation;
  std::string_view commit_id;  ///< Es-Commit-Id: set when Nats-Msg-Id is a commit slot (ADR 0015)
  std::string_view sequence;   ///< Nats-Sequence: set by a direct get's reply
  std::string_view state_schema;  ///< Es-State-Schema: the body carries the state (ADR 0022)
};

/// Reads Es-Aggregate-Type, Es-Aggregate-Id, Es-Version, Es-Events, Nats-Msg-Id, Es-Timestamp,
/// the correlation and causation ids, Es-Commit-Id, Nats-Sequence and Es-State-Schema from a
/// header block (the first value of each,
/// as nats.c's Get; surrounding spaces and tabs trimmed). nullopt for anything unexpected: no
/// "NATS/1.0" status line, no closing blank line, a line without ':', a folded (indented) line. The
/// caller then asks nats.c.
std::optional<commit_headers> parse_commit_headers(std::string_view block) noexcept;

}  // namespace jetsource::detail
