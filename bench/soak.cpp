// soak: a long steady run of the whole read path (issue 16 §3). Deposits are appended with
// append_async at --rate per second for --minutes while a projector applies them and a reader
// queries the read model. Every event is timed at each stage, by stream sequence:
//
//   publish (the append call) -> ack (the server's publish ack) -> fetched (the projector's
//   fetcher hands it to its worker) -> applied (the projection's handler ran) -> committed (the
//   group commit that holds it, on_committed)
//
// One line per minute (stdout): the end-to-end latency percentiles of the events committed in
// that minute, the RSS of this process and of the embedded nats-server, and the WAL's size.
// Stalls (events slower than 50 ms) are noted on stderr with their stages (where the time went;
// -1: that stage had not happened when the event was committed, e.g. the ack came later). At the
// end: the file's own count of deposits against the acknowledged appends (nothing lost), and
// the raw pipeline of e2e-latency for one minute at the same rate, as the baseline.
#include "read_side.hpp"

#include <jetsource/projector.hpp>
#include <jetsource/sqlite.hpp>

#include <bank/account.hpp>

#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace bench {

namespace {

using std::chrono::milliseconds;

constexpr std::size_t ring_size = 1 << 20;  // ~100 s of stamps at 10,000/s
constexpr double stall_ms = 50;

// The stage times of one event (ns since the run's start; 0 = not yet).
struct stamps {
  std::atomic<std::int64_t> publish{0}, ack{0}, fetched{0}, applied{0};
};

// What the minute's committed events showed; guarded by probe::mutex.
struct minute {
  std::vector<double> e2e_ms;
  double worst_ms = 0;
  std::uint64_t worst_seq = 0;
  double worst_ack = 0, worst_fetched = 0, worst_applied = 0;  // ms after publish
  int stalls_noted = 0;
};

// Shared by the publisher, the ack callbacks, the fetcher, the worker and the reporter.
struct probe {
  clock_type::time_point t0 = clock_type::now();
  std::vector<stamps> ring = std::vector<stamps>(ring_size);
  std::mutex mutex;
  minute now;
  std::atomic<std::uint64_t> committed{0};
  std::atomic<double> wal_mb{0};
  std::int64_t last_note_ns = 0;  // under mutex

  std::int64_t ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
  }
  stamps& at(std::uint64_t seq) { return ring[seq & (ring_size - 1)]; }

  // On the worker thread, after a group commit.
  void on_committed(std::span<const std::uint64_t> seqs) {
    const auto t = ns();
    std::lock_guard lk(mutex);
    for (auto seq : seqs) {
      auto& s = at(seq);
      const auto p = s.publish.load(std::memory_order_relaxed);
      if (p == 0) continue;
      const double e2e = static_cast<double>(t - p) / 1e6;
      now.e2e_ms.push_back(e2e);
      auto after = [p](std::int64_t v) { return v ? static_cast<double>(v - p) / 1e6 : -1.0; };
      if (e2e > now.worst_ms) {
        now.worst_ms = e2e;
        now.worst_seq = seq;
        now.worst_ack = after(s.ack.load());
        now.worst_fetched = after(s.fetched.load());
        now.worst_applied = after(s.applied.load());
      }
      // The first event of each stall (one note a second at most, ten a minute).
      if (e2e > stall_ms && now.stalls_noted < 10 && t - last_note_ns > 1'000'000'000) {
        ++now.stalls_noted;
        last_note_ns = t;
        note(
            "soak stall seq={} e2e_ms={:.1f} ack_ms={:.1f} fetched_ms={:.1f} applied_ms={:.1f} "
            "wal_mb={:.1f}",
            seq, e2e, after(s.ack.load()), after(s.fetched.load()), after(s.applied.load()),
            wal_mb.load());
      }
    }
    committed.fetch_add(seqs.size());
  }
};

double rss_mb(int pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      in >> kb;
      return kb / 1024;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

double file_mb(const std::filesystem::path& p) {
  std::error_code ec;
  auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : static_cast<double>(n) / (1024 * 1024);
}

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
}

// The soak's projection: bench_projection's upsert, plus the "applied" stamp.
jetsource::projection soak_projection(probe& pr) {
  return jetsource::projection("bench_balances", 1)
      .on<bank::deposited>([&pr](jetsource::projection_context& cx, const bank::deposited& e) {
        pr.at(cx.sequence()).applied.store(pr.ns(), std::memory_order_relaxed);
        return cx.execute(upsert_balance, cx.aggregate_id(), e.amount_cents);
      });
}

// One point read a few milliseconds apart on a read-only connection of its own (what a query
// service does); counts and times them.
struct reader {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<double> max_ms{0};
  std::thread thread;

  void start(const std::filesystem::path& database, int accounts) {
    thread = std::thread([this, database, accounts] {
      auto db = jetsource::open_read_model(database);
      if (!db) {
        note("soak: no reads: {}", db.error());
        return;
      }
      std::minstd_rand pick(42);
      while (!stop.load()) {
        auto t = clock_type::now();
        auto row = db->query_one("SELECT balance_cents FROM balances WHERE account_id = ?1",
                                 account_id(static_cast<int>(pick() % accounts)));
        if (!row) note("soak: read failed: {}", row.error());
        double ms = seconds_since(t) * 1000;
        if (ms > max_ms.load()) max_ms = ms;
        reads.fetch_add(1);
        std::this_thread::sleep_for(milliseconds(2));
      }
    });
  }
  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

// The reporter: samples the WAL every 100 ms; one line per minute (and one for the drain).
struct reporter {
  probe& pr;
  reader& rd;
  const env& e;
  std::filesystem::path wal;
  int number = 0;
  double minute_wal_max = 0, wal_max = 0, max_ms = 0;
  std::uint64_t reads_before = 0;
  clock_type::time_point since = clock_type::now();

  void sample() {
    const double w = file_mb(wal);
    pr.wal_mb = w;
    minute_wal_max = std::max(minute_wal_max, w);
    wal_max = std::max(wal_max, w);
  }
  // Its own thread (sorting a minute's latencies must not hold up the publisher).
  std::atomic<bool> stop{false};
  std::thread thread;
  void start() {
    thread = std::thread([this] {
      auto next_minute = clock_type::now() + std::chrono::minutes(1);
      while (!stop.load()) {
        std::this_thread::sleep_for(milliseconds(100));
        sample();
        if (clock_type::now() >= next_minute) {
          next_minute += std::chrono::minutes(1);
          print(false);
        }
      }
    });
  }
  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
  }

  void print(bool drain) {
    minute m;
    {
      std::lock_guard lk(pr.mutex);
      std::swap(m, pr.now);
    }
    std::sort(m.e2e_ms.begin(), m.e2e_ms.end());
    const double max = m.e2e_ms.empty() ? 0 : m.e2e_ms.back();
    max_ms = std::max(max_ms, max);
    const auto reads = rd.reads.load();
    ++number;
    line("soak")
        .kv("minute", drain ? std::string("drain") : std::to_string(number))
        .kv("events", m.e2e_ms.size())
        .kv("p50_ms", percentile(m.e2e_ms, 0.5))
        .kv("p99_ms", percentile(m.e2e_ms, 0.99))
        .kv("p999_ms", percentile(m.e2e_ms, 0.999))
        .kv("max_ms", max)
        .kv("worst_seq", m.worst_seq)
        .kv("worst_ack_ms", m.worst_ack)
        .kv("worst_fetched_ms", m.worst_fetched)
        .kv("worst_applied_ms", m.worst_applied)
        .kv("reads", reads - reads_before)
        .kv("read_max_ms", rd.max_ms.exchange(0))
        .kv("rss_mb_bench", rss_mb(static_cast<int>(::getpid())))
        .kv("rss_mb_server", e.server_pid > 0 ? rss_mb(e.server_pid) : -1.0)
        .kv("wal_mb", pr.wal_mb.load())
        .kv("wal_mb_max", minute_wal_max)
        .print();
    reads_before = reads;
    minute_wal_max = 0;
  }
};

}  // namespace

void run_soak(const env& e) {
  const double rate = e.opt.rate;
  const auto total = static_cast<std::int64_t>(rate * 60 * e.opt.minutes);
  constexpr int accounts = 1000;
  const std::string stream = fmt::format("BENCH_SOAK_{}", e.tag);
  stream_guard g(e, stream);
  temp_files tmp;
  probe pr;
  jetsource::projector_options o;
  o.stream = stream;
  o.database = tmp.dir / "soak.db";
  if (e.opt.pull_expires_ms > 0) o.pull_expires = milliseconds(e.opt.pull_expires_ms);
  o.on_committed = [&pr](std::span<const std::uint64_t> seqs) { pr.on_committed(seqs); };
  o.on_fetched = [&pr](std::uint64_t seq) { pr.at(seq).fetched.store(pr.ns()); };
  auto so = store_options_for(stream);
  if (e.opt.duplicate_window_s > 0)
    so.duplicate_window = std::chrono::seconds(e.opt.duplicate_window_s);
  auto store = must(jetsource::event_store::open(*e.conn, so), "open");
  auto p = must(jetsource::projector::start(*e.conn, soak_projection(pr), o), "projector");
  note(
      "soak: {} events at {:.0f}/s for {} min over {} accounts, stream {}, read model {}, "
      "pull_expires {} ms",
      total, rate, e.opt.minutes, accounts, stream, o.database.string(), o.pull_expires.count());
  reader rd;
  rd.start(o.database, accounts);
  reporter rep{pr, rd, e, jetsource::current_file(o.database).string() + "-wal"};

  const auto body = deposit_body(100, static_cast<std::size_t>(e.opt.payload_bytes));
  std::vector<std::uint64_t> version(accounts, 0);
  std::atomic<std::uint64_t> acked{0}, failed{0};
  const auto start = clock_type::now();
  std::int64_t sent = 0;
  rep.start();
  try {
    for (; sent < total; ++sent) {
      const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                   1e9 * static_cast<double>(sent) / rate));
      if (clock_type::now() < due) std::this_thread::sleep_until(due);
      const auto k = static_cast<std::size_t>(sent % accounts);
      jetsource::commit c;
      c.aggregate_type = "Account";
      c.aggregate_id = account_id(static_cast<int>(k));
      c.version = ++version[k];
      c.event_types = "Deposited";
      c.body = body;
      // One publisher on a new stream: the event `sent` gets stream sequence sent + 1.
      auto& st = pr.at(static_cast<std::uint64_t>(sent + 1));
      st.ack = st.fetched = st.applied = 0;  // a slot of the ring used again
      st.publish = pr.ns();
      must(store.append_async(std::move(c),
                              [&](jetsource::result<jetsource::append_result> r) {
                                if (!r) {
                                  failed.fetch_add(1);
                                  return;
                                }
                                pr.at(r->sequence).ack = pr.ns();
                                acked.fetch_add(1);
                              }),
           "append_async");
      if (sent % 1024 == 0) check_stop();
    }
    must(store.flush(std::chrono::minutes(1)), "flush");
    must(p.wait_for(static_cast<std::uint64_t>(sent), std::chrono::minutes(2)), "wait_for");
  } catch (...) {
    rep.finish();
    rd.finish();
    throw;
  }
  rep.finish();
  rep.sample();
  rep.print(true);
  rd.finish();
  const auto status = must(p.status(), "status");
  must(p.stop(), "stop");

  // Nothing lost: the file's own count of deposits against the acknowledged appends.
  auto db = must(jetsource::open_read_model(o.database), "open the read model");
  auto row = must(db.query_one("SELECT coalesce(sum(deposits), 0), coalesce(sum(balance_cents), "
                               "0) FROM balances"),
                  "count");
  const auto applied = row ? row->get<std::uint64_t>(0) : 0;
  const auto cents = row ? row->get<std::uint64_t>(1) : 0;
  const auto ok = acked.load();
  const std::uint64_t lost = ok > applied ? ok - applied : 0;
  const bool pass =
      lost == 0 && applied == ok && cents == 100 * ok && rep.max_ms < 100 && failed.load() == 0;
  line("soak done")
      .kv("sent", sent)
      .kv("acked", ok)
      .kv("failed", failed.load())
      .kv("applied", applied)
      .kv("lost", lost)
      .kv("extra", applied > ok ? applied - ok : 0)
      .kv("dead_letters", status.dead_letters)
      .kv("max_ms", rep.max_ms)
      .kv("wal_mb_max", rep.wal_max)
      .kv("target_max_ms", 100)
      .kv("pass", pass ? 1 : 0)
      .print();

  // The baseline: the raw pipeline (plain publish, pull, SQLite, ack) at the same rate.
  const std::int64_t raw_n = static_cast<std::int64_t>(rate * 60);
  stream_guard rg(e, stream + "_R");
  long missing = 0;
  note("soak: the raw pipeline for 60 s at {:.0f}/s", rate);
  auto l = raw_e2e(e, rg.name(), raw_n, rate, tmp.dir / "raw.db", missing);
  auto ms = [&](double q) { return percentile(l, q) / 1000; };
  line("raw_soak")
      .kv("seconds", 60)
      .kv("rate_per_s", rate)
      .kv("events", raw_n)
      .kv("p50_ms", ms(0.5))
      .kv("p99_ms", ms(0.99))
      .kv("p999_ms", ms(0.999))
      .kv("max_ms", l.empty() ? 0 : l.back() / 1000)
      .kv("missing", missing)
      .print();
}

}  // namespace bench
