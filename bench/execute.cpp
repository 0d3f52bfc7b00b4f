// execute: deposits over 10,000 accounts from 8 threads through ONE shared
// repository<bank::account>::execute (accounts opened first, not timed; warm cache), beside
// the raw nats.c async publish rate with the same headers measured in the same run (the
// target's reference), and the raw sync publish rate from the same 8 threads (what a
// command-at-a-time writer can reach: ratio_sync). Then the same commands through the pipelined
// repository::execute_async (line `execute-async`).
#include "bench.hpp"

#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <thread>

namespace bench {

namespace {

constexpr int accounts = 10'000;
constexpr int threads = 8;

struct exec_result {
  double commands_per_s = 0;
  long errors = 0;
  double async_commands_per_s = 0;  // the same commands through execute_async, same repository
  long async_errors = 0;
  double stored_bytes_per_command = 0;  // what the server keeps: events and snapshot streams
};

// Bytes the server stores for a run on `stream` (and its snapshot stream), per message of the
// event stream.
double stored_bytes_per_commit(const env& e, const std::string& stream) {
  std::uint64_t bytes = 0, commits = 0;
  for (const auto& name : {stream, stream + "_SNAPSHOTS"}) {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, e.raw_js, name.c_str(), nullptr, &err) != NATS_OK) continue;
    bytes += si->State.Bytes;
    if (name == stream) commits = si->State.Msgs;
    jsStreamInfo_Destroy(si);
  }
  return commits == 0 ? 0 : static_cast<double>(bytes) / static_cast<double>(commits);
}

// Runs fn(thread, account index) for `per_thread` commands per thread over that thread's
// accounts (k % threads == thread), round-robin.
template <class F>
long on_threads(std::int64_t per_thread, int n_accounts, F fn) {
  std::atomic<long> errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const int mine = (n_accounts - t + threads - 1) / threads;
      for (std::int64_t i = 0; i < per_thread && !stop_requested.load(); ++i) {
        int k = t + static_cast<int>(i % mine) * threads;
        if (!fn(k)) errors.fetch_add(1);
      }
    });
  for (auto& th : pool) th.join();
  return errors.load();
}

exec_result jetsource_execute(const env& e, const std::string& stream, std::int64_t commands) {
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  jetsource::repository_options ro{.cache_capacity = accounts};
  if (e.opt.snapshot_every) ro.snapshot_every = *e.opt.snapshot_every;
  if (e.opt.head_state_max_bytes) ro.head_state_max_bytes = *e.opt.head_state_max_bytes;
  jetsource::repository<bank::account> repo{store, ro};
  std::vector<std::string> ids;
  for (int k = 0; k < accounts; ++k) ids.push_back(fmt::format("acct-{:05}", k));
  std::atomic<int> shown{0};
  auto report = [&](const jetsource::error& err) {
    if (shown.fetch_add(1) < 2) note("execute: {}", err);
  };
  // Open every account (not timed): this also warms the repository's cache.
  long open_errors = on_threads((accounts + threads - 1) / threads, accounts, [&](int k) {
    auto r = repo.execute(ids[static_cast<std::size_t>(k)], bank::open_account{.owner = "bench"});
    if (!r) report(r.error());
    return static_cast<bool>(r);
  });
  check_stop();
  if (open_errors) throw failure(fmt::format("execute: {} accounts failed to open", open_errors));
  // A note padded so the commit body is about --payload-bytes, like the raw baseline's.
  std::vector<bank::account::event> probe{bank::deposited{100, ""}};
  auto probe_body = must(jetsource::event_registry<bank::account::event>::encode(probe), "encode");
  const auto wanted = static_cast<std::size_t>(e.opt.payload_bytes);
  const std::string note_text(wanted > probe_body.size() ? wanted - probe_body.size() : 0, 'n');

  exec_result r;
  const std::int64_t per_thread = commands / threads;
  auto t0 = clock_type::now();
  r.errors = on_threads(per_thread, accounts, [&](int k) {
    auto x = repo.execute(ids[static_cast<std::size_t>(k)],
                          bank::deposit{.amount_cents = 100, .note = note_text});
    if (!x) report(x.error());
    return static_cast<bool>(x);
  });
  r.commands_per_s = static_cast<double>(per_thread * threads) / seconds_since(t0);
  check_stop();

  // Pipelined: the same commands through execute_async, then flush.
  std::atomic<long> async_errors{0};
  t0 = clock_type::now();
  r.async_errors = on_threads(per_thread, accounts, [&](int k) {
    auto x = repo.execute_async(ids[static_cast<std::size_t>(k)],
                                bank::deposit{.amount_cents = 100, .note = note_text},
                                [&](jetsource::result<jetsource::executed> done) {
                                  if (!done) {
                                    report(done.error());
                                    async_errors.fetch_add(1);
                                  }
                                });
    if (!x) report(x.error());
    return static_cast<bool>(x);
  });
  auto flushed = repo.flush(std::chrono::minutes{5});
  if (!flushed) report(flushed.error());
  r.async_commands_per_s = static_cast<double>(per_thread * threads) / seconds_since(t0);
  r.async_errors += async_errors.load() + (flushed ? 0 : 1);
  check_stop();
  return r;
}

// The raw figure execute really competes with: every command waits for its commit's ack, so
// the closest plain nats.c equivalent is js_PublishMsg from the same 8 threads on one
// connection (same headers, chained expected sequences).
double raw_sync_threads(const env& e, const std::string& stream, std::int64_t events,
                        long& errors) {
  auto o = store_options_for(stream);
  must(jetsource::event_store::open(*e.conn, o), "open");  // same stream configuration
  std::vector<std::string> ids, subjects;
  for (int k = 0; k < accounts; ++k) {
    ids.push_back(fmt::format("acct-{:05}", k));
    subjects.push_back(subject_for(o, "Account", ids.back()));
  }
  std::vector<std::uint64_t> last(accounts, 0), version(accounts, 0);  // disjoint per thread
  const std::string body = make_body(static_cast<std::size_t>(e.opt.payload_bytes));
  const raw_commit_headers h{.timestamp = rfc3339_now()};
  std::atomic<std::uint64_t> counter{0};
  const std::int64_t per_thread = events / threads;
  auto t0 = clock_type::now();
  errors = on_threads(per_thread, accounts, [&](int k) {
    auto i = static_cast<std::size_t>(k);
    natsMsg* m = make_raw_commit(subjects[i], body, raw_msg_id(counter.fetch_add(1)), ids[i],
                                 version[i] + 1, last[i], "Deposited", h);
    jsPubAck* pa = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&pa, e.raw_js, m, nullptr, &err);
    bool ok = s == NATS_OK && pa;
    if (ok) {
      last[i] = pa->Sequence;
      ++version[i];
    }
    if (pa) jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return ok;
  });
  return static_cast<double>(per_thread * threads) / seconds_since(t0);
}

}  // namespace

void run_execute(const env& e) {
  const std::int64_t commands = e.opt.events.value_or(100'000);
  // The sync baseline is a rate; a fifth of the commands measures it well enough.
  const std::int64_t sync_events = std::max<std::int64_t>(commands / 5, threads);
  std::vector<double> js_rates, raw_rates, sync_rates, paired, async_rates, stored;
  long js_errors = 0, raw_errors = 0, sync_errors = 0, async_errors = 0;
  for (int run = 0; run < e.opt.runs; ++run) {
    const std::string base = fmt::format("BENCH_EX_{}_{}", e.tag, run);
    exec_result j;
    double raw = 0;
    long raw_err = 0;
    auto do_js = [&] {
      stream_guard g(e, base + "_J");
      j = jetsource_execute(e, g.name(), commands);
      j.stored_bytes_per_command = stored_bytes_per_commit(e, g.name());
    };
    auto do_raw = [&] {
      {
        stream_guard g(e, base + "_R");
        raw = raw_async_publish(e, g.name(), commands, accounts, raw_err);
      }
      stream_guard g(e, base + "_S");
      long err = 0;
      sync_rates.push_back(raw_sync_threads(e, g.name(), sync_events, err));
      sync_errors += err;
    };
    alternate(run, do_raw, do_js);
    note(
        "execute run {}: jetsource {:.0f} commands/s ({:.0f}/s pipelined), raw async {:.0f} "
        "events/s",
        run + 1, j.commands_per_s, j.async_commands_per_s, raw);
    js_rates.push_back(j.commands_per_s);
    async_rates.push_back(j.async_commands_per_s);
    stored.push_back(j.stored_bytes_per_command);
    async_errors += j.async_errors;
    raw_rates.push_back(raw);
    paired.push_back(j.commands_per_s / raw);
    js_errors += j.errors;
    raw_errors += raw_err;
  }
  auto js = summarize(js_rates), raw = summarize(raw_rates), pr = summarize(paired);
  double ratio = js.median / raw.median;
  line("raw_execute")
      .stats("events_per_s", raw)
      .kv("method", "async")
      .kv("events", commands)
      .kv("aggregates", accounts)
      .kv("payload_bytes", e.opt.payload_bytes)
      .kv("runs", e.opt.runs)
      .kv("errors", raw_errors)
      .print();
  line("raw_execute")
      .stats("events_per_s", summarize(sync_rates))
      .kv("method", "sync")
      .kv("threads", threads)
      .kv("events", sync_events / threads * threads)
      .kv("aggregates", accounts)
      .kv("payload_bytes", e.opt.payload_bytes)
      .kv("runs", e.opt.runs)
      .kv("errors", sync_errors)
      .print();
  line("execute")
      .stats("commands_per_s", js)
      .kv("commands", commands / threads * threads)
      .kv("aggregates", accounts)
      .kv("threads", threads)
      .kv("runs", e.opt.runs)
      .kv("errors", js_errors)
      .kv("ratio", ratio)
      .kv("ratio_paired", pr.median)
      .kv("ratio_sync", js.median / summarize(sync_rates).median)
      .kv("target", "ratio>=0.5")
      .kv("pass", ratio >= 0.5 && js_errors == 0 ? 1 : 0)
      .print();
  // The pipelined path (repository::execute_async) on the same warm repository, same run.
  auto as = summarize(async_rates);
  line("execute-async")
      .stats("commands_per_s", as)
      .kv("commands", commands / threads * threads)
      .kv("aggregates", accounts)
      .kv("threads", threads)
      .kv("runs", e.opt.runs)
      .kv("errors", async_errors)
      .kv("ratio", as.median / raw.median)
      .kv("stored_bytes_per_commit", summarize(stored).median)
      .kv("target", "ratio>=0.5")
      .kv("pass", as.median / raw.median >= 0.5 && async_errors == 0 ? 1 : 0)
      .print();
}

}  // namespace bench
