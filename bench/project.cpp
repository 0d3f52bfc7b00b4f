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
#include "bench.hpp"

#include <bank/account.hpp>
#include <jetsource/projector.hpp>

#include <sqlite3.h>

#include <deque>
#include <map>
#include <memory>
#include <thread>

namespace bench {

namespace {

constexpr const char* upsert_balance =
    "INSERT INTO balances (account_id, balance_cents, deposits) VALUES (?1, ?2, 1) "
    "ON CONFLICT (account_id) DO UPDATE SET balance_cents = balance_cents + "
    "excluded.balance_cents, deposits = deposits + 1";

jetsource::projection bench_projection() {
  return jetsource::projection("bench_balances", 1)
      .on<bank::deposited>([](jetsource::projection_context& cx, const bank::deposited& e) {
        return cx.execute(upsert_balance, cx.aggregate_id(), e.amount_cents);
      });
}

std::string account_id(int k) {
  return fmt::format("acct-{:05}", k);
}

// A deposit commit body of about `bytes` bytes (the note pads it).
std::string deposit_body(std::int64_t cents, std::size_t bytes) {
  using reg = jetsource::event_registry<bank::account::event>;
  std::vector<bank::account::event> probe{bank::deposited{cents, ""}};
  auto base = must(reg::encode(probe), "encode").size();
  std::vector<bank::account::event> ev{
      bank::deposited{cents, std::string(bytes > base ? bytes - base : 0, 'n')}};
  return must(reg::encode(ev), "encode");
}

// Appends `events` deposits round-robin over `accounts` through append_async. Returns the last
// sequence.
std::uint64_t fill(const env& e, const std::string& stream, std::int64_t events, int accounts) {
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  const auto body = deposit_body(100, static_cast<std::size_t>(e.opt.payload_bytes));
  std::vector<std::string> ids;
  for (int k = 0; k < accounts; ++k) ids.push_back(account_id(k));
  std::atomic<long> errors{0};
  std::atomic<std::uint64_t> last{0};
  for (std::int64_t i = 0; i < events; ++i) {
    jetsource::commit c;
    c.aggregate_type = "Account";
    c.aggregate_id = ids[static_cast<std::size_t>(i % accounts)];
    c.version = static_cast<std::uint64_t>(i / accounts + 1);
    c.event_types = "Deposited";
    c.body = body;
    must(store.append_async(std::move(c),
                            [&](jetsource::result<jetsource::append_result> r) {
                              if (!r) {
                                errors.fetch_add(1);
                                return;
                              }
                              auto prev = last.load();
                              while (r->sequence > prev &&
                                     !last.compare_exchange_weak(prev, r->sequence)) {
                              }
                            }),
         "append_async");
    if (i % 4096 == 0) check_stop();
  }
  must(store.flush(std::chrono::minutes(5)), "flush");
  if (errors) throw failure(fmt::format("fill: {} appends failed", errors.load()));
  return last.load();
}

// -- the plain nats.c pull loop (raw baselines) ------------------------------------------------

struct raw_puller {
  natsConnection* nc;
  natsSubscription* sub = nullptr;
  std::string inbox, next_subject;
  int batch;
  std::deque<std::pair<std::uint64_t, int>> requests;  // id, messages still owed (FIFO)
  std::uint64_t request_id = 0;

  raw_puller(const env& e, const std::string& stream, const std::string& consumer, int b)
      : nc(e.raw_nc), batch(b) {
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = consumer.c_str();
    cfg.AckPolicy = js_AckExplicit;
    cfg.MaxAckPending = 20'000;
    cfg.MaxDeliver = -1;
    jsConsumerInfo* ci = nullptr;
    jsErrCode code{};
    check(js_AddConsumer(&ci, e.raw_js, stream.c_str(), &cfg, nullptr, &code), "js_AddConsumer");
    jsConsumerInfo_Destroy(ci);
    natsInbox* ib = nullptr;
    check(natsInbox_Create(&ib), "natsInbox_Create");
    inbox = ib;
    natsInbox_Destroy(ib);
    next_subject = fmt::format("$JS.API.CONSUMER.MSG.NEXT.{}.{}", stream, consumer);
    check(natsConnection_SubscribeSync(&sub, nc, (inbox + ".*").c_str()), "subscribe");
    natsSubscription_SetPendingLimits(sub, -1, -1);
  }
  ~raw_puller() { natsSubscription_Destroy(sub); }
  raw_puller(const raw_puller&) = delete;
  raw_puller& operator=(const raw_puller&) = delete;

  void request() {
    while (requests.size() < 2) {
      auto body = fmt::format(R"({{"batch":{},"expires":{}}})", batch, 500'000'000);
      auto reply = fmt::format("{}.{}", inbox, ++request_id);
      check(natsConnection_PublishRequest(nc, next_subject.c_str(), reply.c_str(), body.data(),
                                          static_cast<int>(body.size())),
            "pull request");
      requests.emplace_back(request_id, batch);
    }
  }
  // The next data message (null on timeout); a status message ends its request.
  natsMsg* next(int timeout_ms) {
    for (;;) {
      request();
      natsMsg* m = nullptr;
      natsStatus s = natsSubscription_NextMsg(&m, sub, timeout_ms);
      if (s == NATS_TIMEOUT) return nullptr;
      check(s, "NextMsg");
      if (natsMsg_GetDataLength(m) == 0 && natsMsg_GetReply(m) == nullptr) {
        std::string_view subj = natsMsg_GetSubject(m);
        auto id = std::strtoull(std::string(subj.substr(subj.rfind('.') + 1)).c_str(), nullptr, 10);
        std::erase_if(requests, [&](const auto& r) { return r.first == id; });
        natsMsg_Destroy(m);
        continue;
      }
      if (!requests.empty() && --requests.front().second == 0) requests.pop_front();
      return m;
    }
  }
  void ack(natsMsg* m) { check(natsConnection_Publish(nc, natsMsg_GetReply(m), "+ACK", 4), "ack"); }
};

// The stream sequence from a $JS.ACK reply subject (2.9: the 6th token).
std::uint64_t stream_sequence(natsMsg* m) {
  std::string_view r = natsMsg_GetReply(m);
  for (int i = 0; i < 5; ++i) r.remove_prefix(r.find('.') + 1);
  return std::strtoull(std::string(r.substr(0, r.find('.'))).c_str(), nullptr, 10);
}

double raw_fetch_ack(const env& e, const std::string& stream, std::uint64_t events) {
  raw_puller p(e, stream, "raw-fetch", 1000);
  std::uint64_t got = 0;
  auto t0 = clock_type::now();
  while (got < events) {
    natsMsg* m = p.next(5000);
    if (!m) throw failure("raw fetch: no message for 5 s");
    p.ack(m);
    natsMsg_Destroy(m);
    ++got;
  }
  natsConnection_FlushTimeout(e.raw_nc, 5000);
  return static_cast<double>(events) / seconds_since(t0);
}

// -- plain SQLite (raw baseline) ----------------------------------------------------------------

struct raw_db {
  sqlite3* db = nullptr;
  sqlite3_stmt* balance = nullptr;
  sqlite3_stmt* dedup = nullptr;

  explicit raw_db(const std::filesystem::path& file) {
    if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) throw failure("sqlite3_open");
    exec(
        "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=40000;"
        "CREATE TABLE balances (account_id TEXT NOT NULL PRIMARY KEY, balance_cents INTEGER "
        "NOT NULL, deposits INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE applied_versions (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT "
        "NULL, version INTEGER NOT NULL, sequence INTEGER NOT NULL, PRIMARY KEY "
        "(aggregate_type, aggregate_id)) WITHOUT ROWID;");
    prepare(upsert_balance, &balance);
    prepare(
        "INSERT INTO applied_versions VALUES ('Account', ?1, ?2, ?3) ON CONFLICT "
        "(aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version, "
        "sequence = excluded.sequence",
        &dedup);
  }
  ~raw_db() {
    sqlite3_finalize(balance);
    sqlite3_finalize(dedup);
    sqlite3_close(db);
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw failure(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
  }
  void prepare(const char* sql, sqlite3_stmt** st) {
    if (sqlite3_prepare_v2(db, sql, -1, st, nullptr) != SQLITE_OK)
      throw failure(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
  }
  void apply(std::string_view id, std::int64_t cents, std::uint64_t version,
             std::uint64_t sequence) {
    sqlite3_bind_text(balance, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_int64(balance, 2, cents);
    if (sqlite3_step(balance) != SQLITE_DONE) throw failure(sqlite3_errmsg(db));
    sqlite3_reset(balance);
    sqlite3_bind_text(dedup, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_int64(dedup, 2, static_cast<sqlite3_int64>(version));
    sqlite3_bind_int64(dedup, 3, static_cast<sqlite3_int64>(sequence));
    if (sqlite3_step(dedup) != SQLITE_DONE) throw failure(sqlite3_errmsg(db));
    sqlite3_reset(dedup);
  }
};

double raw_sqlite(const std::filesystem::path& file, std::int64_t events, int accounts) {
  std::vector<std::string> ids;
  for (int k = 0; k < accounts; ++k) ids.push_back(account_id(k));
  raw_db db(file);
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; i += 1000) {
    db.exec("BEGIN IMMEDIATE");
    for (std::int64_t j = i; j < std::min(events, i + 1000); ++j)
      db.apply(ids[static_cast<std::size_t>(j % accounts)], 100,
               static_cast<std::uint64_t>(j / accounts + 1), static_cast<std::uint64_t>(j + 1));
    db.exec("COMMIT");
  }
  return static_cast<double>(events) / seconds_since(t0);
}

struct temp_files {
  std::filesystem::path dir;
  temp_files() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "jetsource-bench-db-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw failure("mkdtemp");
    dir = pattern;
  }
  ~temp_files() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

double jetsource_project(const env& e, const std::string& stream, std::uint64_t last,
                         const std::filesystem::path& file, int workers, int batch,
                         const std::string& consumer) {
  jetsource::projector_options o;
  o.stream = stream;
  o.database = file;
  o.workers = workers;
  o.batch = batch;
  o.consumer = consumer;
  auto t0 = clock_type::now();
  auto p = must(jetsource::projector::start(*e.conn, bench_projection(), o), "projector");
  must(p.wait_for(last, std::chrono::minutes(10)), "wait_for");
  double rate = static_cast<double>(last) / seconds_since(t0);
  must(p.stop(), "stop");
  return rate;
}

}  // namespace

void run_project(const env& e) {
  const std::int64_t events = e.opt.events.value_or(500'000);
  constexpr int accounts = 50'000;
  const std::string stream = fmt::format("BENCH_PJ_{}", e.tag);
  stream_guard g(e, stream);
  note("project: filling {} with {} deposits over {} accounts", stream, events, accounts);
  auto t_fill = clock_type::now();
  const std::uint64_t last = fill(e, stream, events, accounts);
  note("project: filled in {:.1f} s", seconds_since(t_fill));

  struct config {
    int workers, batch;
  };
  const std::vector<config> configs = {{1, 500}, {2, 500}, {4, 500}, {4, 100}, {4, 1000}};
  std::map<std::pair<int, int>, std::vector<double>> js_rates;
  std::vector<double> fetch_rates, sqlite_rates;
  for (int run = 0; run < e.opt.runs; ++run) {
    temp_files tmp;
    alternate(
        run,
        [&] {
          fetch_rates.push_back(raw_fetch_ack(e, stream, last));
          natsConnection_Flush(e.raw_nc);
          jsErrCode code{};
          js_DeleteConsumer(e.raw_js, stream.c_str(), "raw-fetch", nullptr, &code);
          sqlite_rates.push_back(raw_sqlite(tmp.dir / "raw.db", events, accounts));
          note("project run {}: raw fetch+ack {:.0f}/s, raw sqlite {:.0f}/s", run + 1,
               fetch_rates.back(), sqlite_rates.back());
        },
        [&] {
          for (const auto& c : configs) {
            auto consumer = fmt::format("bench-w{}-b{}-{}", c.workers, c.batch, run);
            double rate = jetsource_project(e, stream, last, tmp.dir / (consumer + ".db"),
                                            c.workers, c.batch, consumer);
            jsErrCode code{};
            js_DeleteConsumer(e.raw_js, stream.c_str(), consumer.c_str(), nullptr, &code);
            js_rates[{c.workers, c.batch}].push_back(rate);
            note("project run {}: jetsource W={} batch={} {:.0f}/s", run + 1, c.workers, c.batch,
                 rate);
          }
        });
  }
  auto fetch = summarize(fetch_rates), sqlite = summarize(sqlite_rates);
  const double floor = std::min(fetch.median, sqlite.median);
  for (const auto& c : configs) {
    auto s = summarize(js_rates[{c.workers, c.batch}]);
    line("project")
        .kv("workers", c.workers)
        .kv("batch", c.batch)
        .kv("events", events)
        .kv("aggregates", accounts)
        .stats("events_per_s", s)
        .kv("ratio", s.median / floor)
        .kv("target", 0.7)
        .kv("pass", s.median / floor >= 0.7 ? 1 : 0)
        .print();
  }
  line("raw_project")
      .kv("method", "fetch_ack")
      .kv("batch", 1000)
      .kv("events", events)
      .stats("events_per_s", fetch)
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

}  // namespace

void run_e2e_latency(const env& e) {
  constexpr double rate = 10'000;
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
