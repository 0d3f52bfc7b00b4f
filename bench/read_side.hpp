// jetsource-bench: what the read-side scenarios (project, e2e-latency, rebuild) share — the
// bench projection, the deposit fill, and the raw baselines (a plain nats.c pull loop, plain
// SQLite upserts).
#pragma once

#include "bench.hpp"

#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>

#include <sqlite3.h>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

/// The bench projection's upsert (also what the raw SQLite baseline runs).
extern const char* const upsert_balance;

/// "bench_balances": a balance row per account, upserted per deposit (migrations in
/// bench/migrations/bench_balances).
jetsource::projection bench_projection();

/// "acct-00042".
std::string account_id(int k);

/// A deposit commit body of about `bytes` bytes (the note pads it).
std::string deposit_body(std::int64_t cents, std::size_t bytes);

/// Appends `events` deposits round-robin over `accounts` through append_async (with progress
/// notes naming `scenario`). Returns the last sequence.
std::uint64_t fill(const env& e, std::string_view scenario, const std::string& stream,
                   std::int64_t events, int accounts);

/// Starts a projector of bench_projection() with `o`, waits until it applied `last`, stops it.
/// Returns `last` / the seconds from the start to the wait's end.
double project_until(const env& e, jetsource::projector_options o, std::uint64_t last);

/// Deletes a durable consumer of `stream` (a missing one is fine).
void delete_consumer(const env& e, const std::string& stream, const std::string& consumer);

/// The plain nats.c pull loop of the raw baselines: a durable consumer created with
/// js_AddConsumer, pull requests published by hand (two in flight), `+ACK` published per
/// message.
struct raw_puller {
  natsConnection* nc;
  natsSubscription* sub = nullptr;
  std::string inbox, next_subject;
  int batch;
  struct pending {
    std::uint64_t id;
    int owed;                         // messages still owed
    clock_type::time_point deadline;  // expires + grace: 2.9.10 can drop an expired request
  };
  std::deque<pending> requests;  // FIFO
  std::uint64_t request_id = 0;

  /// `ack_all`: the consumer acks cumulatively (AckPolicy All) instead of per message.
  /// `in_memory`: the consumer's state in the server's memory (MemoryStorage). `ack_none`:
  /// AckPolicy None instead (no MaxAckPending; nothing to ack).
  raw_puller(const env& e, const std::string& stream, const std::string& consumer, int b,
             bool ack_all = false, std::int64_t max_ack_pending = 20'000, bool in_memory = false,
             bool ack_none = false);
  ~raw_puller() { natsSubscription_Destroy(sub); }
  raw_puller(const raw_puller&) = delete;
  raw_puller& operator=(const raw_puller&) = delete;

  void request();
  /// The next data message (null on timeout); a status message ends its request, and so does
  /// its client deadline (checked only while no message arrives).
  natsMsg* next(int timeout_ms);
  void ack(natsMsg* m) { check(natsConnection_Publish(nc, natsMsg_GetReply(m), "+ACK", 4), "ack"); }
};

/// The stream sequence from a $JS.ACK reply subject (2.9: the 6th token).
std::uint64_t stream_sequence(natsMsg* m);

/// Raw fetch + ack of the first `events` messages of `stream` on a new consumer "raw-fetch"
/// (pull batch `batch`), deleted afterwards. Returns messages/s. `ack_all`: AckPolicy All and
/// one ack per `batch` messages (and on the last), what jetsource's cumulative acks do at most.
double raw_fetch_ack(const env& e, const std::string& stream, std::uint64_t events,
                     int batch = 1000, bool ack_all = false);

/// The like-for-like raw pipeline (issue 17 §3): the program a user would write instead of a
/// projector. One thread pulls (plain nats.c, the hand-driven loop above, two requests of
/// `batch` in flight, on a new AckPolicy All consumer "raw-pipeline" with MaxAckPending
/// `max_buffered`) and hands the messages over; another runs plain SQLite (raw_db, the
/// projection's pragmas) in group commits of up to `max_group`: per message a dedup row per
/// aggregate that only a higher stream sequence updates and, when it did, the balance upsert;
/// after each commit one cumulative `+ACK` (the group's last message). `decode`: the amount is
/// read from the body, as a projection must: rapidjson's Document::Parse (the JSON library
/// jetsource itself uses, idiomatically) and the first event's data.amount_cents; without it the
/// amount is the fill's (100) and no body is read (the stricter, unrealistic baseline: key
/// `ratio_pipeline_nodecode`). Returns events/s over the first `events` messages, timed from
/// before its set-up (a new file, its consumer) as jetsource's figure includes the projector's
/// start.
struct pipeline_options {
  int batch = 500;
  std::size_t max_group = 2000;
  std::int64_t max_buffered = 20'000;
  bool synchronous_off = false;
  bool decode = true;
  /// After the last commit, make the file durable as jetsource::rebuild does before it switches
  /// to its new file (PRAGMA synchronous=FULL, then a TRUNCATE checkpoint: the WAL copied into
  /// the file and both synced): what a hand-written rebuild that writes with synchronous=OFF
  /// must do before anyone reads its output. Timed apart (raw_pipeline's `with_durable`).
  bool durable_at_end = false;
  /// Its consumer kept in the server's memory (MemoryStorage), as jetsource::rebuild's is
  /// (projector_options::consumer_in_memory).
  bool consumer_in_memory = false;
  /// Its consumer with AckPolicy None and nothing acked, as jetsource::rebuild's is
  /// (projector_options::unacknowledged). No check for lost deliveries: a bound, not a program
  /// anyone should run.
  bool unacknowledged = false;
};
/// The rate returned is up to the last commit and its ack, with or without `o.durable_at_end`;
/// with it, `with_durable` (when given) gets the rate that includes the durability step.
double raw_pipeline(const env& e, const std::string& stream, std::uint64_t events,
                    const std::filesystem::path& file, const pipeline_options& o,
                    double* with_durable = nullptr);

/// Both raw pipelines of one run, one after the other into files in `dir`: decoding the bodies
/// (`o` as given) and not. Appends their events/s to `decoding` and `nodecode`, and the decoding
/// one's CPU µs per event (cpu_us_per_event) to `decoding_cpu`.
void raw_pipelines(const env& e, const std::string& stream, std::uint64_t events,
                   const std::filesystem::path& dir, const pipeline_options& o,
                   std::vector<double>& decoding, std::vector<double>& nodecode,
                   std::vector<double>& decoding_cpu,
                   std::vector<double>* decoding_durable = nullptr);
/// Their result lines: `<name> method=pipeline ... cpu_us_per_event=…` and
/// `<name> method=pipeline_nodecode ...`.
void print_raw_pipelines(const char* name, const pipeline_options& o, std::int64_t events,
                         const summary& decoding, const summary& nodecode,
                         const summary& decoding_cpu);

/// Plain SQLite with the projection's pragmas (1 KiB pages, WAL, 64 MiB cache, checkpoint every
/// 40k pages) and the same two tables: the balances and a dedup row per aggregate.
/// `synchronous_off`: PRAGMA synchronous=OFF (what a rebuild's throwaway file runs with)
/// instead of NORMAL.
struct raw_db {
  sqlite3* db = nullptr;
  sqlite3_stmt* balance = nullptr;
  sqlite3_stmt* dedup = nullptr;

  explicit raw_db(const std::filesystem::path& file, bool synchronous_off = false);
  ~raw_db();
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;
  void exec(const char* sql);
  void prepare(const char* sql, sqlite3_stmt** st);
  void apply(std::string_view id, std::int64_t cents, std::uint64_t version,
             std::uint64_t sequence);
};

/// Raw SQLite group commits of the fill's upserts (+ dedup row), `per_tx` per transaction, into
/// a new file. Returns events/s.
double raw_sqlite(const std::filesystem::path& file, std::int64_t events, int accounts,
                  std::int64_t per_tx = 1000, bool synchronous_off = false);

/// The raw pipeline of e2e-latency: `n` plain js_PublishAsync at `rate`/s over 1000 accounts ->
/// hand-driven pull -> one SQLite transaction of what arrived -> acks. Returns the latencies
/// (µs, append call to commit), sorted; `missing` counts events never committed.
std::vector<double> raw_e2e(const env& e, const std::string& stream, std::int64_t n, double rate,
                            const std::filesystem::path& file, long& missing);

/// A temporary directory, removed with its contents when destroyed.
struct temp_files {
  std::filesystem::path dir;
  temp_files();
  ~temp_files();
  temp_files(const temp_files&) = delete;
  temp_files& operator=(const temp_files&) = delete;
};

}  // namespace bench
