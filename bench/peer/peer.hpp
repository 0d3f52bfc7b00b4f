// jetsource-bench peer-postgres: the work of issue 17's table on PostgreSQL, beside jetsource's
// figure of the same run (bench/peer/*.cpp).
//
// Schema (what Marten, Emmett, eventsourcing and Akka's R2DBC journal use, reduced to its core):
// one `events` table, bigserial position, unique (stream_id, version), jsonb payload. Statements
// are prepared; each figure is a median over --runs, PostgreSQL and jetsource alternating which
// goes first. Result lines: `peer-postgres work=<append|load|project> ... ratio=<x>`, where
// ratio > 1 means jetsource is faster (rates: jetsource / PostgreSQL; times: PostgreSQL /
// jetsource). `durability=` names PostgreSQL's synchronous_commit; jetsource's is
// `jetsource_durability=` (nats-server 2.9.10 fsyncs its store every 2 minutes, not per message).
#pragma once

#include "pg.hpp"

namespace bench::peer {

enum class durability { sync_commit_off, sync_commit_on };
inline const char* name(durability d) {
  return d == durability::sync_commit_off ? "sync_commit_off" : "sync_commit_on";
}
inline constexpr durability durabilities[] = {durability::sync_commit_off,
                                              durability::sync_commit_on};
/// jetsource's durability, for the output (nats-server's default sync_interval).
inline constexpr const char* jetsource_durability = "nats_fsync_every_2min";

/// Drops and creates the events table (and the projection's tables).
void create_schema(pg::conn& c);
/// SET synchronous_commit for the session.
void set_durability(pg::conn& c, durability d);

/// (a) 1 client, one 1-event commit at a time (--events, default 10,000), against append; (b) 8
/// clients (10 x --events) against append_async.
void run_appends(const env& e, const pg::server& s);
/// (c) cold loads of 1,000- and 20-event aggregates scattered in a 100k-event table (and 1M with
/// --peer-1m), against a repository with default options.
void run_loads(const env& e, const pg::server& s);
/// (d) Marten's projection shape: pages in global order, upserts + checkpoint per transaction,
/// against the projector.
void run_projection(const env& e, const pg::server& s);

}  // namespace bench::peer
