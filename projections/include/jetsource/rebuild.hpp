// Rebuild a projection by replaying its stream into a NEW database file (blue/green), while the
// live projection keeps serving reads and applying new events; then switch atomically.
//
// The rebuild uses its own consumer from stream sequence 1, all workers, big batches and
// relaxed durability (the file is thrown away if it fails). When it has caught up with the
// head it switches: if no live projector holds the database it points the database at the new
// file itself; otherwise it leaves the file ready and the live projector adopts it
// (projector::adopt_rebuild, called by serve loops), so the running process picks it up
// without a restart and carries on from its own position: nothing lost, nothing applied twice.
// An interrupted rebuild leaves the live model untouched; the next rebuild resumes its file.
// Layout and protocol: docs/adr/0008-blue-green-rebuild.md.
//
// clang-format off
//   auto r = jetsource::rebuild(conn, order_summary(), live_options,
//                               {.progress = [](const jetsource::rebuild_progress& p) {
//                                 fmt::print("{} of {}\n", p.done, p.total);
//                               }});
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace jetsource {

/// Where a rebuild stands (passed to rebuild_options::progress about every 200 ms).
struct rebuild_progress {
  std::string projection;
  std::uint64_t done = 0;   ///< stream sequence (commit) applied up to
  std::uint64_t total = 0;  ///< the stream's last sequence
  double events_per_s = 0;  ///< events (not commits) since the rebuild started
  double eta_s = 0;         ///< at the commit rate
  bool resumed = false;     ///< continues an interrupted rebuild's file
  /// Commits (stream messages, as done/total count them) replayed per second since the
  /// rebuild started: the rate that matches done/total.
  double commits_per_s = 0;
};

struct rebuild_options {
  int workers = 1;  // measured fastest with cumulative acks (docs/performance.md)
  int batch = 1000;
  std::size_t max_group = 10'000;
  std::size_t max_buffered = 50'000;
  std::function<void(const rebuild_progress&)> progress;
  /// How long to wait for a running live projector to adopt the rebuilt file.
  std::chrono::milliseconds adopt_timeout{60'000};
};

struct rebuild_result {
  std::filesystem::path file;    ///< the rebuilt database file, now in use
  std::uint64_t sequence = 0;    ///< stream sequence it had applied when it switched
  std::uint64_t events = 0;      ///< events applied by this rebuild
  double seconds = 0;            ///< the whole call: replay_seconds + adopt_seconds + the switch
  bool adopted_by_live = false;  ///< a running projector switched to it (else: this call did)
  bool resumed = false;
  /// Commits (stream messages) this rebuild replayed: from its file's mark (0, or where an
  /// interrupted rebuild stopped) to `sequence`. The unit of rebuild_progress::done/total.
  std::uint64_t commits = 0;
  double replay_seconds = 0;  ///< replaying the stream into the new file, up to the head
  /// waiting for the running live projector to adopt the file (adopted_by_live); 0 otherwise
  double adopt_seconds = 0;
};

/// Rebuilds `p` for the database `live.database` (live: the options the projection runs with).
/// Errors: errc::busy when another rebuild of it runs; errc::rejected when the replay produced
/// dead letters (the live model is untouched, the new file removed, the error names the first);
/// NATS and SQLite errors; errc::timeout when a live projector did not adopt the file in time (it
/// still will).
result<rebuild_result> rebuild(const connection& conn, const projection& p,
                               const projector_options& live, const rebuild_options& o = {});

/// Starts the live projector; when its database was built with another version of the
/// projection, first rebuilds it (blue/green: the old file serves reads until the switch).
result<projector> start_or_rebuild(const connection& conn, const projection& p,
                                   const projector_options& o, const rebuild_options& ro = {});

/// Where an unfinished rebuild stands (from the files; any process), if one exists.
struct rebuild_state {
  std::filesystem::path file;
  std::uint64_t applied_sequence = 0;
  bool ready = false;  ///< finished, waiting for the live projector to adopt it
};
std::optional<rebuild_state> pending_rebuild(const std::filesystem::path& database,
                                             std::string_view projection_name);

}  // namespace jetsource
