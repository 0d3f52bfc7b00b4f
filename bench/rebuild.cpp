// rebuild: jetsource::rebuild of a projection beside plain nats.c and plain SQLite.
//
// A stream pre-filled with deposits (1 event per commit, default 1,000,000) over 50,000
// accounts. The live model is built once by a projector run (not timed) and left without a
// running projector; each run then calls jetsource::rebuild on it with the default
// rebuild_options and times the whole call: a new generation file from sequence 1 on its own
// consumer, caught up with the head, and switched to by the call itself (no live projector
// holds the database, so nothing waits for an adoption). Beside it, from the same run: a plain
// nats.c pull fetch + ack of the same stream (the rebuild's batch, two requests in flight,
// `+ACK` per message) and plain SQLite group commits of the same upserts + a dedup row per
// aggregate with the rebuild's settings (max_group per transaction, synchronous=OFF, the
// projection's other pragmas). Target: >= 0.8 x the smaller raw rate (issue 4). And the
// like-for-like raw pipeline (raw_pipeline) with the rebuild's batch, group, buffer and
// synchronous=OFF, timed to its last commit and ack: `ratio_pipeline`, target >= 0.95 (issue 17
// §3). The pipeline then makes its file durable as the rebuild does before its switch
// (synchronous=FULL, a TRUNCATE checkpoint); timed with that step, it is `raw_rebuild
// method=pipeline_durable` and `ratio_pipeline_durable`. The rebuild's consumer is kept in the
// server's memory (projector_options::consumer_in_memory), the pipeline's on disk as a user's
// would be by default; the same pipeline with an in-memory consumer is `raw_rebuild
// method=pipeline_in_memory` and `ratio_pipeline_in_memory` (the part of the margin that is
// that choice). Its consumer also has AckPolicy None (projector_options::unacknowledged): the
// pipeline with both is `raw_rebuild method=pipeline_unacknowledged` and
// `ratio_pipeline_unacknowledged` (a bound: it does not look for lost deliveries).
#include "read_side.hpp"

#include <jetsource/projector.hpp>
#include <jetsource/rebuild.hpp>

#include <vector>

namespace bench {

namespace {

// Checks what a rebuild produced: every account, every deposit once.
void check_model(const std::filesystem::path& database, std::int64_t events, int accounts) {
  auto db = must(jetsource::open_read_model(database), "open the read model");
  auto row = must(db.query_one("SELECT count(*), coalesce(sum(deposits), 0) FROM balances"),
                  "query the read model");
  if (!row || row->get<std::int64_t>(0) != std::min<std::int64_t>(accounts, events) ||
      row->get<std::int64_t>(1) != events)
    throw failure(
        fmt::format("rebuild: the model has {} accounts and {} deposits, expected {} / {}",
                    row ? row->get<std::int64_t>(0) : -1, row ? row->get<std::int64_t>(1) : -1,
                    std::min<std::int64_t>(accounts, events), events));
}

}  // namespace

void run_rebuild(const env& e) {
  const std::int64_t events = e.opt.events.value_or(1'000'000);
  constexpr int accounts = 50'000;
  const std::string stream = fmt::format("BENCH_RB_{}", e.tag);
  stream_guard g(e, stream);
  const std::uint64_t last = fill(e, "rebuild", stream, events, accounts);

  temp_files live_dir;
  jetsource::projector_options live;
  live.stream = stream;
  live.database = live_dir.dir / "live.db";
  live.consumer = "bench-rebuild-live";
  note("rebuild: live model built by a projector at {:.0f} events/s (not timed)",
       project_until(e, live, last));

  jetsource::rebuild_options ro;  // the defaults, as a user gets them
  auto next_note = clock_type::now();
  ro.progress = [&](const jetsource::rebuild_progress& p) {
    if (clock_type::now() < next_note) return;
    next_note = clock_type::now() + std::chrono::seconds(5);
    note("rebuild: {}/{} at {:.0f} events/s, ETA {:.0f} s", p.done, p.total, p.events_per_s,
         p.eta_s);
  };

  std::vector<double> js_rates, js_seconds, fetch_rates, fetch_all_rates, sqlite_rates,
      pipeline_rates, nodecode_rates, pipeline_cpu, js_cpu, durable_rates, in_memory_rates,
      unacked_rates;
  pipeline_options po{ro.batch, ro.max_group, static_cast<std::int64_t>(ro.max_buffered), true};
  po.durable_at_end = true;
  // The same program with its consumer in the server's memory, as the rebuild's is: how much of
  // the rebuild's margin over `po` is that choice (ratio_pipeline_in_memory).
  pipeline_options po_in_memory = po;
  po_in_memory.durable_at_end = false;
  po_in_memory.consumer_in_memory = true;
  pipeline_options po_unacked = po_in_memory;
  po_unacked.unacknowledged = true;
  for (int run = 0; run < e.opt.runs; ++run) {
    temp_files tmp;
    alternate(
        run,
        [&] {
          raw_pipelines(e, stream, last, tmp.dir, po, pipeline_rates, nodecode_rates, pipeline_cpu,
                        &durable_rates);
          in_memory_rates.push_back(
              raw_pipeline(e, stream, last, tmp.dir / "pipeline-in-memory.db", po_in_memory));
          unacked_rates.push_back(
              raw_pipeline(e, stream, last, tmp.dir / "pipeline-unacked.db", po_unacked));
          note(
              "rebuild run {}: raw pipeline {:.0f}/s (without decoding the bodies {:.0f}/s, its "
              "consumer in memory {:.0f}/s, and unacknowledged {:.0f}/s)",
              run + 1, pipeline_rates.back(), nodecode_rates.back(), in_memory_rates.back(),
              unacked_rates.back());
          fetch_rates.push_back(raw_fetch_ack(e, stream, last, ro.batch));
          fetch_all_rates.push_back(raw_fetch_ack(e, stream, last, ro.batch, true));
          sqlite_rates.push_back(raw_sqlite(tmp.dir / "raw.db", events, accounts,
                                            static_cast<std::int64_t>(ro.max_group), true));
          note(
              "rebuild run {}: raw fetch+ack {:.0f}/s, fetch+ack-all {:.0f}/s, raw sqlite "
              "{:.0f}/s",
              run + 1, fetch_rates.back(), fetch_all_rates.back(), sqlite_rates.back());
        },
        [&] {
          auto t0 = clock_type::now();
          const auto cpu = cpu_used(e);
          auto r = must(jetsource::rebuild(*e.conn, bench_projection(), live, ro), "rebuild");
          double secs = seconds_since(t0);
          js_cpu.push_back(cpu_us_per_event(e, cpu, last));
          note("rebuild: whole call {:.2f} s, of which the replay {:.2f} s", secs,
               r.replay_seconds);
          if (r.sequence != last || r.events != static_cast<std::uint64_t>(events) ||
              r.adopted_by_live || r.resumed)
            throw failure(fmt::format(
                "rebuild: sequence {} (expected {}), events {} (expected {}), adopted_by_live {}, "
                "resumed {}",
                r.sequence, last, r.events, events, r.adopted_by_live, r.resumed));
          check_model(live.database, events, accounts);
          js_seconds.push_back(secs);
          js_rates.push_back(static_cast<double>(events) / secs);
          note("rebuild run {}: jetsource {:.0f}/s ({:.1f} s, now {})", run + 1, js_rates.back(),
               secs, r.file.filename().string());
        });
  }
  auto fetch = summarize(fetch_rates), fetch_all = summarize(fetch_all_rates),
       sqlite = summarize(sqlite_rates), pipeline = summarize(pipeline_rates),
       nodecode = summarize(nodecode_rates), pipe_cpu = summarize(pipeline_cpu);
  auto js = summarize(js_rates), cpu = summarize(js_cpu);
  const double floor = std::min(fetch.median, sqlite.median);
  line("rebuild")
      .kv("events", events)
      .kv("aggregates", accounts)
      .kv("workers", ro.workers)
      .kv("batch", ro.batch)
      .kv("max_group", ro.max_group)
      .kv("max_buffered", ro.max_buffered)
      .stats("events_per_s", js)
      .stats("seconds", summarize(js_seconds))
      .kv("ratio_ack_all", js.median / std::min(fetch_all.median, sqlite.median))
      .kv("ratio_pipeline", js.median / pipeline.median)
      .kv("target_pipeline", 0.95)
      .kv("ratio_pipeline_nodecode", js.median / nodecode.median)
      .kv("ratio_pipeline_durable", js.median / summarize(durable_rates).median)
      .kv("ratio_pipeline_in_memory", js.median / summarize(in_memory_rates).median)
      .kv("ratio_pipeline_unacknowledged", js.median / summarize(unacked_rates).median)
      .stats("cpu_us_per_event", cpu)
      .kv("cpu_ratio_pipeline", pipe_cpu.median / cpu.median)
      .kv("ratio", js.median / floor)
      .kv("target", 0.8)
      .kv("pass", js.median / floor >= 0.8 ? 1 : 0)
      .print();
  print_raw_pipelines("raw_rebuild", po, events, pipeline, nodecode, pipe_cpu);
  for (const auto& [method, rates] : {std::pair{"pipeline_durable", &durable_rates},
                                      {"pipeline_in_memory", &in_memory_rates},
                                      {"pipeline_unacknowledged", &unacked_rates}})
    line("raw_rebuild")
        .kv("method", method)
        .kv("batch", ro.batch)
        .kv("per_tx", ro.max_group)
        .kv("synchronous", "off")
        .kv("events", events)
        .stats("events_per_s", summarize(*rates))
        .print();
  line("raw_rebuild")
      .kv("method", "fetch_ack")
      .kv("batch", ro.batch)
      .kv("events", events)
      .stats("events_per_s", fetch)
      .print();
  line("raw_rebuild")
      .kv("method", "fetch_ack_all")
      .kv("batch", ro.batch)
      .kv("events", events)
      .stats("events_per_s", fetch_all)
      .print();
  line("raw_rebuild")
      .kv("method", "sqlite")
      .kv("per_tx", ro.max_group)
      .kv("synchronous", "off")
      .kv("events", events)
      .stats("events_per_s", sqlite)
      .print();
}

}  // namespace bench
