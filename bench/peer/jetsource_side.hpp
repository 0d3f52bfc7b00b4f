// jetsource-bench peer-postgres: the pieces of the jetsource scenarios it reuses, so that its
// jetsource figures are measured exactly as append-sync, append-async, load and project do.
#pragma once

#include "../bench.hpp"

#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bench {

/// append-sync's (`async` false: append, one commit at a time) or append-async's (append_async,
/// pipelined) jetsource run: `events` 1-event commits round-robin over 10,000 aggregates on a new
/// `stream`. Returns events/s; failed appends in `errors`. (append.cpp)
double jetsource_append(const env& e, const std::string& stream, std::int64_t events, bool async,
                        long& errors);

/// load's fill: `commits` commits on `store`, with every event of `aggregates` (id, events; one
/// command each through `writer`) scattered through them, the rest other aggregates' deposits.
/// Returns the stream's last sequence. (load.cpp)
std::uint64_t fill_scattered(const env& e, jetsource::event_store& store,
                             jetsource::repository<bank::account>& writer,
                             const std::vector<std::pair<std::string, int>>& aggregates,
                             std::int64_t commits, unsigned seed);

/// Waits (untimed) until `stream` has no consumer left, as load does between timed reads.
void wait_no_consumers(const env& e, const std::string& stream);

}  // namespace bench
