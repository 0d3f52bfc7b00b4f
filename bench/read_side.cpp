// jetsource-bench: the read-side scenarios' shared pieces (see read_side.hpp).
#include "read_side.hpp"

#include <bank/account.hpp>

#include <rapidjson/document.h>

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

namespace bench {

const char* const upsert_balance =
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

std::string deposit_body(std::int64_t cents, std::size_t bytes) {
  using reg = jetsource::event_registry<bank::account::event>;
  std::vector<bank::account::event> probe{bank::deposited{cents, ""}};
  auto base = must(reg::encode(probe), "encode").size();
  std::vector<bank::account::event> ev{
      bank::deposited{cents, std::string(bytes > base ? bytes - base : 0, 'n')}};
  return must(reg::encode(ev), "encode");
}

std::uint64_t fill(const env& e, std::string_view scenario, const std::string& stream,
                   std::int64_t events, int accounts) {
  note("{}: filling {} with {} deposits over {} accounts", scenario, stream, events, accounts);
  auto t0 = clock_type::now();
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
  note("{}: filled in {:.1f} s", scenario, seconds_since(t0));
  return last.load();
}

double project_until(const env& e, jetsource::projector_options o, std::uint64_t last) {
  // The group commits' count (a note: their mean size explains much of a run's rate).
  std::atomic<std::uint64_t> commits{0};
  if (!o.on_committed) o.on_committed = [&](std::span<const std::uint64_t>) { ++commits; };
  auto t0 = clock_type::now();
  auto p = must(jetsource::projector::start(*e.conn, bench_projection(), o), "projector");
  note("{}: started in {:.1f} ms", o.consumer, seconds_since(t0) * 1e3);
  must(p.wait_for(last, std::chrono::minutes(10)), "wait_for");
  double rate = static_cast<double>(last) / seconds_since(t0);
  must(p.stop(), "stop");
  if (commits > 0)
    note("{}: {} group commits, {:.0f} messages each on average", o.consumer, commits.load(),
         static_cast<double>(last) / static_cast<double>(commits.load()));
  return rate;
}

void delete_consumer(const env& e, const std::string& stream, const std::string& consumer) {
  jsErrCode code{};
  js_DeleteConsumer(e.raw_js, stream.c_str(), consumer.c_str(), nullptr, &code);
}

// -- the plain nats.c pull loop (raw baselines) ------------------------------------------------

raw_puller::raw_puller(const env& e, const std::string& stream, const std::string& consumer, int b,
                       bool ack_all, std::int64_t max_ack_pending, bool in_memory, bool ack_none)
    : nc(e.raw_nc), batch(b) {
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = consumer.c_str();
  cfg.AckPolicy = ack_none ? js_AckNone : ack_all ? js_AckAll : js_AckExplicit;
  if (!ack_none) cfg.MaxAckPending = max_ack_pending;
  cfg.MaxDeliver = -1;
  cfg.MemoryStorage = in_memory;
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

void raw_puller::request() {
  while (requests.size() < 2) {
    auto body = fmt::format(R"({{"batch":{},"expires":{}}})", batch, 500'000'000);
    auto reply = fmt::format("{}.{}", inbox, ++request_id);
    check(natsConnection_PublishRequest(nc, next_subject.c_str(), reply.c_str(), body.data(),
                                        static_cast<int>(body.size())),
          "pull request");
    requests.push_back(
        {request_id, batch, clock_type::now() + std::chrono::milliseconds(500 + 250)});
  }
}

natsMsg* raw_puller::next(int timeout_ms) {
  const auto give_up = clock_type::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    request();
    natsMsg* m = nullptr;
    natsStatus s = natsSubscription_NextMsg(&m, sub, std::min(timeout_ms, 50));
    if (s == NATS_TIMEOUT) {
      auto now = clock_type::now();
      std::erase_if(requests, [&](const pending& r) { return r.deadline < now; });
      if (now >= give_up) return nullptr;
      continue;
    }
    check(s, "NextMsg");
    if (natsMsg_GetDataLength(m) == 0 && natsMsg_GetReply(m) == nullptr) {
      std::string_view subj = natsMsg_GetSubject(m);
      auto id = std::strtoull(std::string(subj.substr(subj.rfind('.') + 1)).c_str(), nullptr, 10);
      std::erase_if(requests, [&](const pending& r) { return r.id == id; });
      natsMsg_Destroy(m);
      continue;
    }
    if (!requests.empty() && --requests.front().owed == 0) requests.pop_front();
    return m;
  }
}

std::uint64_t stream_sequence(natsMsg* m) {
  std::string_view r = natsMsg_GetReply(m);
  for (int i = 0; i < 5; ++i) r.remove_prefix(r.find('.') + 1);
  return std::strtoull(std::string(r.substr(0, r.find('.'))).c_str(), nullptr, 10);
}

double raw_fetch_ack(const env& e, const std::string& stream, std::uint64_t events, int batch,
                     bool ack_all) {
  double rate = 0;
  {
    raw_puller p(e, stream, "raw-fetch", batch, ack_all);
    std::uint64_t got = 0;
    auto t0 = clock_type::now();
    while (got < events) {
      natsMsg* m = p.next(5000);
      if (!m) throw failure(fmt::format("raw fetch: no message for 5 s after {}", got));
      ++got;
      if (!ack_all || got % static_cast<std::uint64_t>(batch) == 0 || got == events) p.ack(m);
      natsMsg_Destroy(m);
    }
    natsConnection_FlushTimeout(e.raw_nc, 5000);
    rate = static_cast<double>(events) / seconds_since(t0);
  }
  natsConnection_Flush(e.raw_nc);
  delete_consumer(e, stream, "raw-fetch");
  return rate;
}

// -- plain SQLite (raw baseline) ----------------------------------------------------------------

raw_db::raw_db(const std::filesystem::path& file, bool synchronous_off) {
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) throw failure("sqlite3_open");
  exec(fmt::format(
           "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous={}; "
           "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=40000;"
           "CREATE TABLE balances (account_id TEXT NOT NULL PRIMARY KEY, balance_cents INTEGER "
           "NOT NULL, deposits INTEGER NOT NULL) WITHOUT ROWID;"
           "CREATE TABLE applied_versions (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT "
           "NULL, version INTEGER NOT NULL, sequence INTEGER NOT NULL, PRIMARY KEY "
           "(aggregate_type, aggregate_id)) WITHOUT ROWID;",
           synchronous_off ? "OFF" : "NORMAL")
           .c_str());
  prepare(upsert_balance, &balance);
  prepare(
      "INSERT INTO applied_versions VALUES ('Account', ?1, ?2, ?3) ON CONFLICT "
      "(aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version, "
      "sequence = excluded.sequence",
      &dedup);
}

raw_db::~raw_db() {
  sqlite3_finalize(balance);
  sqlite3_finalize(dedup);
  sqlite3_close(db);
}

void raw_db::exec(const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
    throw failure(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
}

void raw_db::prepare(const char* sql, sqlite3_stmt** st) {
  if (sqlite3_prepare_v2(db, sql, -1, st, nullptr) != SQLITE_OK)
    throw failure(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
}

void raw_db::apply(std::string_view id, std::int64_t cents, std::uint64_t version,
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

double raw_sqlite(const std::filesystem::path& file, std::int64_t events, int accounts,
                  std::int64_t per_tx, bool synchronous_off) {
  std::vector<std::string> ids;
  for (int k = 0; k < accounts; ++k) ids.push_back(account_id(k));
  raw_db db(file, synchronous_off);
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; i += per_tx) {
    db.exec("BEGIN IMMEDIATE");
    for (std::int64_t j = i; j < std::min(events, i + per_tx); ++j)
      db.apply(ids[static_cast<std::size_t>(j % accounts)], 100,
               static_cast<std::uint64_t>(j / accounts + 1), static_cast<std::uint64_t>(j + 1));
    db.exec("COMMIT");
  }
  return static_cast<double>(events) / seconds_since(t0);
}

// -- the like-for-like raw pipeline ------------------------------------------------------------

namespace {

// What a hand-written projection reads from a commit body {"events":[{"type","v","data"}]}: the
// deposit's amount (nullopt: not a readable deposit). Done as well as rapidjson allows, as the
// best hand-written loop would: the body copied once into a reused buffer and parsed in place
// (strings are not copied), the values in a fixed buffer (no malloc per message), plain number
// parsing. (rapidjson's idiomatic Document::Parse(data, size) reads byte by byte through an
// encoded stream and allocates a 64 KiB pool per document: over twice the instructions.)
class body_reader {
 public:
  std::optional<std::int64_t> deposited_cents(natsMsg* m) {
    text_.assign(natsMsg_GetData(m),
                 natsMsg_GetData(m) + static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    text_.push_back('\0');
    pool values(values_, sizeof values_), stack(stack_, sizeof stack_);
    document d(&values, sizeof stack_ / 2, &stack);
    d.ParseInsitu<rapidjson::kParseInsituFlag>(text_.data());
    if (d.HasParseError() || !d.IsObject()) return std::nullopt;
    auto events = d.FindMember("events");
    if (events == d.MemberEnd() || !events->value.IsArray() || events->value.Empty())
      return std::nullopt;
    const auto& first = events->value[0];
    if (!first.IsObject()) return std::nullopt;
    auto type = first.FindMember("type"), data = first.FindMember("data");
    if (type == first.MemberEnd() || data == first.MemberEnd() || !type->value.IsString() ||
        std::string_view(type->value.GetString(), type->value.GetStringLength()) != "Deposited" ||
        !data->value.IsObject())
      return std::nullopt;
    auto cents = data->value.FindMember("amount_cents");
    if (cents == data->value.MemberEnd() || !cents->value.IsInt64()) return std::nullopt;
    return cents->value.GetInt64();
  }

 private:
  using pool = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
  using document = rapidjson::GenericDocument<rapidjson::UTF8<>, pool, pool>;
  std::vector<char> text_;
  alignas(std::max_align_t) char values_[2048];
  alignas(std::max_align_t) char stack_[1024];
};

}  // namespace

double raw_pipeline(const env& e, const std::string& stream, std::uint64_t events,
                    const std::filesystem::path& file, const pipeline_options& o,
                    double* with_durable) {
  double rate = 0;
  {
    // Timed from here: its new file, its consumer and its subscription, as jetsource's figure
    // includes the projector's start (its file, migrations and consumer; project_until).
    auto t0 = clock_type::now();
    raw_db db(file, o.synchronous_off);
    sqlite3_stmt* dedup = nullptr;  // only a higher stream sequence updates the row
    db.prepare(
        "INSERT INTO applied_versions VALUES ('Account', ?1, 1, ?2) ON CONFLICT "
        "(aggregate_type, aggregate_id) DO UPDATE SET sequence = excluded.sequence "
        "WHERE excluded.sequence > applied_versions.sequence",
        &dedup);
    raw_puller puller(e, stream, "raw-pipeline", o.batch, true, o.max_buffered,
                      o.consumer_in_memory, o.unacknowledged);
    std::mutex mutex;  // guards queue, failed
    std::condition_variable ready;
    std::deque<natsMsg*> queue;
    bool failed = false;
    note("raw pipeline: set up in {:.1f} ms", seconds_since(t0) * 1e3);
    // Named as jetsource's fetcher and worker are ("js-fetch", "js-apply-0"), for profiles
    // (perf report --sort comm).
    std::array<char, 16> caller_name{};
    pthread_getname_np(pthread_self(), caller_name.data(), caller_name.size());
    pthread_setname_np(pthread_self(), "raw-apply");
    std::thread fetcher([&] {
      pthread_setname_np(pthread_self(), "raw-fetch");
      std::vector<natsMsg*> got;
      for (std::uint64_t fetched = 0; fetched < events;) {
        natsMsg* m = puller.next(5000);
        if (!m) break;
        got.push_back(m);
        while (got.size() < 256 && fetched + got.size() < events && (m = puller.next(0)))
          got.push_back(m);
        fetched += got.size();
        {
          std::lock_guard lk(mutex);
          queue.insert(queue.end(), got.begin(), got.end());
        }
        ready.notify_one();
        got.clear();
      }
      std::lock_guard lk(mutex);
      failed = true;  // the writer stops waiting once the queue is empty
      ready.notify_one();
    });
    std::vector<natsMsg*> group;
    body_reader reader;
    std::uint64_t applied = 0, commits = 0;
    while (applied < events) {
      {
        std::unique_lock lk(mutex);
        ready.wait(lk, [&] { return !queue.empty() || failed; });
        if (queue.empty()) break;
        const auto n = std::min(queue.size(), o.max_group);
        group.assign(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(n));
        queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(n));
      }
      db.exec("BEGIN IMMEDIATE");
      for (natsMsg* m : group) {
        std::string_view subject = natsMsg_GetSubject(m);
        auto id = subject.substr(subject.rfind('.') + 1);
        sqlite3_bind_text(dedup, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
        sqlite3_bind_int64(dedup, 2, static_cast<sqlite3_int64>(stream_sequence(m)));
        if (sqlite3_step(dedup) != SQLITE_DONE) throw failure(sqlite3_errmsg(db.db));
        sqlite3_reset(dedup);
        if (sqlite3_changes(db.db) == 0) continue;  // applied before
        std::int64_t cents = 100;
        if (o.decode) {
          auto amount = reader.deposited_cents(m);
          if (!amount) throw failure("raw pipeline: a body that is not a deposit");
          cents = *amount;
        }
        sqlite3_bind_text(db.balance, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
        sqlite3_bind_int64(db.balance, 2, cents);
        if (sqlite3_step(db.balance) != SQLITE_DONE) throw failure(sqlite3_errmsg(db.db));
        sqlite3_reset(db.balance);
      }
      db.exec("COMMIT");
      if (!o.unacknowledged) puller.ack(group.back());  // AckPolicy All: the group and before
      applied += group.size();
      ++commits;
      for (natsMsg* m : group) natsMsg_Destroy(m);
    }
    fetcher.join();
    pthread_setname_np(pthread_self(), caller_name.data());
    {
      std::lock_guard lk(mutex);
      for (natsMsg* m : queue) natsMsg_Destroy(m);
    }
    sqlite3_finalize(dedup);
    if (applied < events)
      throw failure(fmt::format("raw pipeline: no message for 5 s after {}", applied));
    natsConnection_FlushTimeout(e.raw_nc, 5000);
    rate = static_cast<double>(events) / seconds_since(t0);
    if (o.durable_at_end) {
      const auto d0 = clock_type::now();
      db.exec("PRAGMA synchronous=FULL");
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      if (with_durable) *with_durable = static_cast<double>(events) / seconds_since(t0);
      note("raw pipeline: durable in {:.1f} ms", seconds_since(d0) * 1e3);
    }
    note("raw pipeline: {} group commits, {:.0f} messages each on average", commits,
         static_cast<double>(events) / static_cast<double>(std::max<std::uint64_t>(commits, 1)));
  }
  natsConnection_Flush(e.raw_nc);
  delete_consumer(e, stream, "raw-pipeline");
  return rate;
}

temp_files::temp_files() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "jetsource-bench-db-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw failure("mkdtemp");
  dir = pattern;
}

temp_files::~temp_files() {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void raw_pipelines(const env& e, const std::string& stream, std::uint64_t events,
                   const std::filesystem::path& dir, const pipeline_options& o,
                   std::vector<double>& decoding, std::vector<double>& nodecode,
                   std::vector<double>& decoding_cpu, std::vector<double>* decoding_durable) {
  const auto cpu = cpu_used(e);
  double durable = 0;
  decoding.push_back(raw_pipeline(e, stream, events, dir / "pipeline.db", o, &durable));
  if (decoding_durable) decoding_durable->push_back(durable);
  decoding_cpu.push_back(cpu_us_per_event(e, cpu, events));
  auto plain = o;
  plain.decode = false;
  nodecode.push_back(raw_pipeline(e, stream, events, dir / "pipeline-nodecode.db", plain));
}

void print_raw_pipelines(const char* name, const pipeline_options& o, std::int64_t events,
                         const summary& decoding, const summary& nodecode,
                         const summary& decoding_cpu) {
  for (const auto& [method, s] :
       {std::pair{"pipeline", &decoding}, {"pipeline_nodecode", &nodecode}}) {
    line l(name);
    l.kv("method", method).kv("batch", o.batch).kv("per_tx", o.max_group);
    if (o.synchronous_off) l.kv("synchronous", "off");
    l.kv("events", events).stats("events_per_s", *s);
    if (s == &decoding) l.stats("cpu_us_per_event", decoding_cpu);
    l.print();
  }
}

}  // namespace bench
