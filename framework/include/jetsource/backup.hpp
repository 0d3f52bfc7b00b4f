// Backup and restore of a bounded context's event stream: a consistent, portable file (every
// commit with its subject, headers, body, sequence and time; the stream's configuration), taken
// while writers keep appending, checked by SHA-256, restored into an empty server or a new stream
// name. Read models and snapshots are not in it: they are rebuilt. Format: docs/operations.md.
//
// Thread-safety: each call is self-contained (its own consumer or publisher on the connection);
// several may run at once. Progress callbacks run on the calling thread.
//
// clang-format off
//   auto full = jetsource::backup(conn, "ORDERS", "orders-full.jsbk");     // 1..last
//   auto inc = jetsource::backup(conn, "ORDERS", "orders-inc.jsbk",
//                                {.from_sequence = full->last_sequence + 1});
//   auto r = jetsource::restore(other_conn, "orders-full.jsbk");  // then orders-inc.jsbk
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource {

/// How far a backup or restore has come: commits done of `total` (known at the start), bytes.
struct backup_progress {
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  std::uint64_t bytes = 0;  ///< file bytes written (backup) or read (restore)
};
using backup_progress_callback = std::function<void(const backup_progress&)>;

struct backup_options {
  /// 1: a full backup. N > 1: an incremental one, the commits N..last; it records the commit at
  /// N - 1 so a restore can check it continues the stream it is applied to.
  std::uint64_t from_sequence = 1;
  /// Called about every 100 ms and once at the end (optional).
  backup_progress_callback progress;
};

/// The stream's configuration as recorded in a backup's header.
struct backup_stream_config {
  std::string name;                   ///< e.g. "ORDERS"
  std::vector<std::string> subjects;  ///< e.g. ["orders.>"]
  std::string subject_prefix;         ///< e.g. "orders"
  std::uint32_t partitions = 0;  ///< from the stream's description (jetsource records it there)
  std::string description;
  std::string retention = "limits";
  std::string storage = "file";
  int replicas = 1;
  std::chrono::milliseconds duplicate_window{0};
  std::int64_t max_msg_size = -1;  ///< -1: the server's max payload
  bool deny_delete = true, deny_purge = true, allow_direct = true;
};

/// The commit just before an incremental backup's first one: what it must continue.
struct backup_previous {
  std::uint64_t sequence = 0;
  std::string subject;
  std::string msg_id;  ///< Nats-Msg-Id (Es-Commit-Id when it has none)
};

/// What a backup file holds, as read and checked by verify_backup.
struct backup_info {
  int version = 0;
  std::string created;  ///< RFC 3339, UTC
  backup_stream_config stream;
  std::uint64_t from_sequence = 1;          ///< the first sequence asked for
  std::uint64_t last_sequence = 0;          ///< the stream's last sequence when the backup began
  std::optional<backup_previous> previous;  ///< set for an incremental backup
  std::uint64_t records = 0;                ///< commits in the file
  std::uint64_t first_record_sequence = 0;  ///< 0 when there is none
  std::uint64_t bytes = 0;                  ///< file size
  std::string sha256;                       ///< hex, of everything before the checksum
  /// Set when two commits share a Nats-Msg-Id (a command id reused later than the duplicate
  /// window): their sequences and the id. restore refuses such a file (see docs/operations.md).
  std::optional<std::string> repeated_msg_id;
};

struct backup_summary {
  std::string stream;
  std::filesystem::path path;
  std::uint64_t from_sequence = 1, last_sequence = 0, records = 0, bytes = 0;
  std::string sha256;
  double seconds = 0;
};

/// Backs up the commits from_sequence..last of `stream`, `last` being its last sequence when the
/// call begins (commits appended meanwhile are for the next incremental backup). Writes
/// `path`.partial, then renames it to `path`. errc::invalid_argument when `path` exists,
/// errc::not_found when the stream does not, errc::io for file errors.
result<backup_summary> backup(const connection& conn, std::string_view stream,
                              const std::filesystem::path& path,
                              const backup_options& options = {});

/// Reads a whole backup file and checks it (magic, version, structure, every length, sequence
/// order, record count, SHA-256): errc::corrupt naming what is wrong, errc::not_found when the
/// file does not exist, errc::io when it cannot be read. Writes nothing.
result<backup_info> verify_backup(const std::filesystem::path& path);

struct restore_options {
  std::string stream;  ///< the stream to restore into; "" = the name recorded in the file
  backup_progress_callback progress;
  std::chrono::milliseconds ack_timeout{10000};  ///< for the publishes
};

struct restore_summary {
  std::string stream;
  std::uint64_t records = 0;  ///< commits published by this call (0: the stream held them all)
  /// The sequences they got in the restored stream (first 0 when none was published; last: the
  /// stream's last sequence).
  std::uint64_t first_sequence = 0, last_sequence = 0;
  bool renumbered = false;  ///< the original had gaps: restored sequences differ
  double seconds = 0;
};

/// Verifies the whole file first (nothing is written when it is damaged: errc::corrupt), then: a
/// full backup creates the stream (recorded configuration, `options.stream` as its name) and
/// must find it absent or empty; an incremental one must find the stream ending exactly at the
/// commit it continues. A stream already holding this file's first commits (an interrupted
/// restore) is continued after them; anything else is errc::conflict. Publishes every commit in
/// order with its subject, headers and body; each publish expects the stream's last sequence
/// (Nats-Expected-Last-Sequence), so the order is exact. errc::invalid_argument when two commits
/// share a Nats-Msg-Id (the server would drop the second).
result<restore_summary> restore(const connection& conn, const std::filesystem::path& path,
                                const restore_options& options = {});

}  // namespace jetsource
