// project and e2e-latency: the projector beside plain nats.c and plain SQLite.
//
// project: a stream pre-filled with deposits (1 event per commit) over 50,000 accounts; the
// projection upserts a balance row per event (plus jetsource's dedup row). Beside it, from the
// same run: a plain nats.c pull fetch + ack of the same stream (a hand-driven pull loop, two
// requests of 1000 in flight, `+ACK` published per message), and plain SQLite group commits of
// the same upserts + a dedup row per aggregate (1000 per transaction, same pragmas).
//
// e2e-latency: deposits appended at a steady 10,000/s for 10 s while the projector runs; the
// time from the append call to the commit that applied it. Beside it, a raw pipeline in the
// same run: plain async publish -> hand-driven pull -> SQLite commit of what arrived -> ack.
#include "read_side.hpp"

#include <jetsource/projector.hpp>

#include <map>
#include <memory>
#include <thread>

namespace bench {

namespace {

double jetsource_project(const env& e, const std::string& stream, std::uint64_t last,
                         const std::filesystem::path& file, int workers, int batch,
                         const std::string& consumer) {
  jetsource::projector_options o;
  o.stream = stream;
  o.database = file;
  o.workers = workers;
  o.batch = batch;
  o.consumer = consumer;
  return project_until(e, o, last);
}

}  // namespace

void run_project(const env& e) {
  const std::int64_t events = e.opt.events.value_or(500'000);
  constexpr int accounts = 50'000;
  const std::string stream = fmt::format("BENCH_PJ_{}", e.tag);
  stream_guard g(e, stream);
  const std::uint64_t last = fill(e, "project", stream, events, accounts);

  struct config {
    int workers, batch;
  };
  const std::vector<config> configs = {{1, 500}, {2, 500}, {4, 500}, {4, 100}, {4, 1000}};
  std::map<std::pair<int, int>, std::vector<double>> js_rates, js_cpu;
  std::vector<double> fetch_rates, fetch_all_rates, sqlite_rates, pipeline_rates, nodecode_rates,
      pipeline_cpu;
  const jetsource::projector_options defaults;
  const pipeline_options po{defaults.batch, defaults.max_group,
                            static_cast<std::int64_t>(defaults.max_buffered), false};
  for (int run = 0; run < e.opt.runs; ++run) {
    temp_files tmp;
    alternate(
        run,
        [&] {
          raw_pipelines(e, stream, last, tmp.dir, po, pipeline_rates, nodecode_rates, pipeline_cpu);
          note("project run {}: raw pipeline {:.0f}/s (without decoding the bodies {:.0f}/s)",
               run + 1, pipeline_rates.back(), nodecode_rates.back());
          fetch_rates.push_back(raw_fetch_ack(e, stream, last));
          fetch_all_rates.push_back(raw_fetch_ack(e, stream, last, 1000, true));
          sqlite_rates.push_back(raw_sqlite(tmp.dir / "raw.db", events, accounts));
          note(
              "project run {}: raw fetch+ack {:.0f}/s, fetch+ack-all {:.0f}/s, raw sqlite {:.0f}/s",
              run + 1, fetch_rates.back(), fetch_all_rates.back(), sqlite_rates.back());
        },
        [&] {
          for (const auto& c : configs) {
            auto consumer = fmt::format("bench-w{}-b{}-{}", c.workers, c.batch, run);
            const auto cpu = cpu_used(e);
            double rate = jetsource_project(e, stream, last, tmp.dir / (consumer + ".db"),
                                            c.workers, c.batch, consumer);
            delete_consumer(e, stream, consumer);
            js_rates[{c.workers, c.batch}].push_back(rate);
            js_cpu[{c.workers, c.batch}].push_back(cpu_us_per_event(e, cpu, last));
            note("project run {}: jetsource W={} batch={} {:.0f}/s ({:.1f} us CPU per event)",
                 run + 1, c.workers, c.batch, rate, js_cpu[{c.workers, c.batch}].back());
          }
        });
  }
  auto fetch = summarize(fetch_rates), fetch_all = summarize(fetch_all_rates),
       sqlite = summarize(sqlite_rates), pipeline = summarize(pipeline_rates),
       nodecode = summarize(nodecode_rates), pipe_cpu = summarize(pipeline_cpu);
  const double floor = std::min(fetch.median, sqlite.median);
  for (const auto& c : configs) {
    auto s = summarize(js_rates[{c.workers, c.batch}]);
    auto cpu = summarize(js_cpu[{c.workers, c.batch}]);
    line("project")
        .kv("workers", c.workers)
        .kv("batch", c.batch)
        .kv("events", events)
        .kv("aggregates", accounts)
        .stats("events_per_s", s)
        .kv("ratio_ack_all", s.median / std::min(fetch_all.median, sqlite.median))
        .kv("ratio_pipeline", s.median / pipeline.median)
        .kv("target_pipeline", 0.95)
        .kv("ratio_pipeline_nodecode", s.median / nodecode.median)
        .stats("cpu_us_per_event", cpu)
        .kv("cpu_ratio_pipeline", pipe_cpu.median / cpu.median)
        .kv("ratio", s.median / floor)
        .kv("target", 0.7)
        .kv("pass", s.median / floor >= 0.7 ? 1 : 0)
        .print();
  }
  print_raw_pipelines("raw_project", po, events, pipeline, nodecode, pipe_cpu);
  line("raw_project")
      .kv("method", "fetch_ack")
      .kv("batch", 1000)
      .kv("events", events)
      .stats("events_per_s", fetch)
      .print();
  line("raw_project")
      .kv("method", "fetch_ack_all")
      .kv("batch", 1000)
      .kv("events", events)
      .stats("events_per_s", fetch_all)
      .print();
  line("raw_project")
      .kv("method", "sqlite")
      .kv("per_tx", 1000)
      .kv("events", events)
      .stats("events_per_s", sqlite)
      .print();
}

namespace {

struct latency_result {
  summary p50, p99, p999;
};

// Latencies in µs from per-sequence send and commit times (ns since t0; 0 = missing).
std::vector<double> latencies(const std::vector<std::atomic<std::int64_t>>& sent,
                              const std::vector<std::atomic<std::int64_t>>& committed,
                              long& missing) {
  std::vector<double> out;
  for (std::size_t i = 1; i < sent.size(); ++i) {
    auto s = sent[i].load(), c = committed[i].load();
    if (s == 0 || c == 0) {
      ++missing;
      continue;
    }
    out.push_back(static_cast<double>(c - s) / 1000.0);
  }
  std::sort(out.begin(), out.end());
  return out;
}
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

// Sends `n` messages at `rate`/s: send(i) at t0 + i/rate.
template <class Send>
void steady(std::int64_t n, double rate, clock_type::time_point t0, Send send) {
  for (std::int64_t i = 0; i < n; ++i) {
    auto due = t0 + std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 * i / rate));
    if (clock_type::now() < due) std::this_thread::sleep_until(due);
    send(i);
    if (i % 1024 == 0) check_stop();
  }
}

std::int64_t ns_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
}

std::vector<double> jetsource_e2e(const env& e, const std::string& stream, std::int64_t n,
                                  double rate, const std::filesystem::path& file, long& missing) {
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  std::vector<std::atomic<std::int64_t>> sent(static_cast<std::size_t>(n + 1)),
      committed(static_cast<std::size_t>(n + 1));
  auto t0 = clock_type::now();
  jetsource::projector_options o;
  o.stream = stream;
  o.database = file;
  o.on_committed = [&](std::span<const std::uint64_t> seqs) {
    auto now = ns_since(t0);
    for (auto s : seqs)
      if (s < committed.size()) committed[s] = now;
  };
  auto p = must(jetsource::projector::start(*e.conn, bench_projection(), o), "projector");
  const auto body = deposit_body(100, static_cast<std::size_t>(e.opt.payload_bytes));
  constexpr int accounts = 1000;
  std::vector<std::uint64_t> version(accounts, 0);
  steady(n, rate, clock_type::now(), [&](std::int64_t i) {
    auto k = static_cast<std::size_t>(i % accounts);
    jetsource::commit c;
    c.aggregate_type = "Account";
    c.aggregate_id = account_id(static_cast<int>(k));
    c.version = ++version[k];
    c.event_types = "Deposited";
    c.body = body;
    sent[static_cast<std::size_t>(i + 1)] = ns_since(t0);  // one publisher: sequence i + 1
    must(store.append_async(std::move(c), [](jetsource::result<jetsource::append_result>) {}),
         "append_async");
  });
  must(store.flush(), "flush");
  must(p.wait_for(static_cast<std::uint64_t>(n), std::chrono::seconds(60)), "wait_for");
  must(p.stop(), "stop");
  return latencies(sent, committed, missing);
}

}  // namespace

std::vector<double> raw_e2e(const env& e, const std::string& stream, std::int64_t n, double rate,
                            const std::filesystem::path& file, long& missing) {
  auto o = store_options_for(stream);
  must(jetsource::event_store::open(*e.conn, o), "open");  // same stream configuration
  std::vector<std::atomic<std::int64_t>> sent(static_cast<std::size_t>(n + 1)),
      committed(static_cast<std::size_t>(n + 1));
  raw_db db(file);
  raw_puller puller(e, stream, "raw-e2e", 1000);
  auto t0 = clock_type::now();
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    std::vector<natsMsg*> got;
    std::int64_t applied = 0;
    while (applied < n) {
      natsMsg* m = puller.next(100);
      if (!m) {
        if (done && applied >= n) break;
        continue;
      }
      got.push_back(m);
      while (got.size() < 1000 && (m = puller.next(0)) != nullptr) got.push_back(m);
      db.exec("BEGIN IMMEDIATE");
      for (natsMsg* x : got) {
        std::string_view subj = natsMsg_GetSubject(x);
        db.apply(subj.substr(subj.rfind('.') + 1), 100, 1, stream_sequence(x));
      }
      db.exec("COMMIT");
      auto now = ns_since(t0);
      for (natsMsg* x : got) {
        auto seq = stream_sequence(x);
        if (seq < committed.size()) committed[seq] = now;
        puller.ack(x);
        natsMsg_Destroy(x);
      }
      applied += static_cast<std::int64_t>(got.size());
      got.clear();
    }
  });
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 4096;
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, e.raw_nc, &jo), "raw async JetStream context");
  const auto body = deposit_body(100, static_cast<std::size_t>(e.opt.payload_bytes));
  constexpr int accounts = 1000;
  steady(n, rate, clock_type::now(), [&](std::int64_t i) {
    auto id = account_id(static_cast<int>(i % accounts));
    sent[static_cast<std::size_t>(i + 1)] = ns_since(t0);
    check(js_PublishAsync(js, subject_for(o, "Account", id).c_str(), body.data(),
                          static_cast<int>(body.size()), nullptr),
          "js_PublishAsync");
  });
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60'000;
  check(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
  done = true;
  consumer.join();
  jsCtx_Destroy(js);
  return latencies(sent, committed, missing);
}

void run_e2e_latency(const env& e) {
  const double rate = e.opt.rate;                         // --rate, 10,000/s by default
  const std::int64_t n = e.opt.events.value_or(100'000);  // 10 s at 10,000/s
  std::vector<double> js50, js99, js999, raw50, raw99, raw999;
  long js_missing = 0, raw_missing = 0;
  for (int run = 0; run < e.opt.runs; ++run) {
    temp_files tmp;
    const std::string base = fmt::format("BENCH_E2E_{}_{}", e.tag, run);
    alternate(
        run,
        [&] {
          stream_guard g(e, base + "_R");
          auto l = raw_e2e(e, g.name(), n, rate, tmp.dir / "raw.db", raw_missing);
          raw50.push_back(percentile(l, 0.5));
          raw99.push_back(percentile(l, 0.99));
          raw999.push_back(percentile(l, 0.999));
          note("e2e-latency run {}: raw p50 {:.0f} us p99 {:.0f} us", run + 1, raw50.back(),
               raw99.back());
        },
        [&] {
          stream_guard g(e, base + "_J");
          auto l = jetsource_e2e(e, g.name(), n, rate, tmp.dir / "js.db", js_missing);
          js50.push_back(percentile(l, 0.5));
          js99.push_back(percentile(l, 0.99));
          js999.push_back(percentile(l, 0.999));
          note("e2e-latency run {}: jetsource p50 {:.0f} us p99 {:.0f} us", run + 1, js50.back(),
               js99.back());
        });
  }
  auto j99 = summarize(js99), r99 = summarize(raw99);
  bool pass = j99.median <= 10'000 && j99.median <= 1.2 * r99.median;
  line("e2e-latency")
      .kv("rate_per_s", rate)
      .kv("events", n)
      .stats("p50_us", summarize(js50))
      .stats("p99_us", j99)
      .stats("p999_us", summarize(js999))
      .kv("missing", js_missing)
      .kv("ratio_p99", j99.median / r99.median)
      .kv("target_p99_us", 10'000)
      .kv("target_ratio", 1.2)
      .kv("pass", pass ? 1 : 0)
      .print();
  line("raw_e2e-latency")
      .kv("rate_per_s", rate)
      .kv("events", n)
      .stats("p50_us", summarize(raw50))
      .stats("p99_us", r99)
      .stats("p999_us", summarize(raw999))
      .kv("missing", raw_missing)
      .print();
}

}  // namespace bench
