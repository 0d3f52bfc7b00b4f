// detail (internal target): the header names of the commit wire format (docs/wire-format.md) and
// the one count of the events a commit's Es-Events header names.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace jetsource::detail {

// Header names of the commit wire format (docs/wire-format.md).
inline constexpr const char* hdr_msg_id = "Nats-Msg-Id";
/// The commit id when Nats-Msg-Id holds a commit slot (<Type>.<id>@<base version>; ADR 0015).
inline constexpr const char* hdr_commit_id = "Es-Commit-Id";
inline constexpr const char* hdr_expected_subject_seq = "Nats-Expected-Last-Subject-Sequence";
inline constexpr const char* hdr_sequence = "Nats-Sequence";  // added by direct get
inline constexpr const char* hdr_aggregate_type = "Es-Aggregate-Type";
inline constexpr const char* hdr_aggregate_id = "Es-Aggregate-Id";
inline constexpr const char* hdr_version = "Es-Version";
inline constexpr const char* hdr_events = "Es-Events";
inline constexpr const char* hdr_content_type = "Content-Type";
inline constexpr const char* hdr_timestamp = "Es-Timestamp";
inline constexpr const char* hdr_correlation_id = "Es-Correlation-Id";
inline constexpr const char* hdr_causation_id = "Es-Causation-Id";
/// Set when the body carries the aggregate's state after the commit (member "state"; ADR 0022).
inline constexpr const char* hdr_state_schema = "Es-State-Schema";
// Snapshot messages.
inline constexpr const char* hdr_snapshot_sequence = "Es-Sequence";
inline constexpr const char* hdr_snapshot_schema = "Es-Snapshot-Schema";

/// The stream description that records the partition count: "jetsource event store;
/// partitions=<P>".
inline constexpr std::string_view description_prefix = "jetsource event store; partitions=";
/// Snapshot subjects: jetsource-snapshots.<stream>.<Type>.<id>.
inline constexpr std::string_view snapshot_subject_root = "jetsource-snapshots";

/// The number of events an Es-Events value names (comma-separated wire names): 0 when empty.
constexpr std::size_t event_count(std::string_view es_events) noexcept {
  if (es_events.empty()) return 0;
  return static_cast<std::size_t>(std::count(es_events.begin(), es_events.end(), ',')) + 1;
}

}  // namespace jetsource::detail
