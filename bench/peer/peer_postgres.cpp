// jetsource-bench peer-postgres: the scenario, the schema and the appends (peer.hpp).
#include "jetsource_side.hpp"
#include "peer.hpp"

#include <memory>
#include <thread>

namespace bench {

namespace peer {

void create_schema(pg::conn& c) {
  c.exec(
      "DROP TABLE IF EXISTS events, balances, projection_checkpoints;"
      "CREATE TABLE events ("
      "  position bigserial PRIMARY KEY,"
      "  stream_id text NOT NULL,"
      "  version bigint NOT NULL,"
      "  type text NOT NULL,"
      "  payload jsonb NOT NULL,"
      "  created_at timestamptz NOT NULL DEFAULT now(),"
      "  UNIQUE (stream_id, version));"
      "CREATE TABLE balances (account_id text PRIMARY KEY, balance_cents bigint NOT NULL,"
      "  deposits bigint NOT NULL);"
      "CREATE TABLE projection_checkpoints (name text PRIMARY KEY, position bigint NOT NULL);");
}

void set_durability(pg::conn& c, durability d) {
  c.exec(
      fmt::format("SET synchronous_commit = {}", d == durability::sync_commit_off ? "off" : "on"));
}

namespace {

constexpr int aggregates = 10'000;  // as append-sync and append-async
constexpr const char* append_sql =
    "INSERT INTO events (stream_id, version, type, payload) VALUES ($1, $2, $3, $4) "
    "RETURNING position";

// One client's share: aggregates k = t, t + clients, ... round-robin, versions chained (a
// duplicate version is the optimistic-concurrency conflict the unique key catches).
long append_share(pg::conn& c, int t, int clients, std::int64_t events, const std::string& body) {
  const int mine = aggregates / clients;
  std::vector<std::int64_t> version(static_cast<std::size_t>(mine), 0);
  std::vector<std::string> ids;
  for (int j = 0; j < mine; ++j) ids.push_back(fmt::format("acct-{:05}", t + j * clients));
  long errors = 0;
  for (std::int64_t i = 0; i < events; ++i) {
    auto j = static_cast<std::size_t>(i % mine);
    auto v = std::to_string(version[j] + 1);
    const char* params[] = {ids[j].c_str(), v.c_str(), "Deposited", body.c_str()};
    pg::result r(PQexecPrepared(c.get(), "append", 4, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && r.rows() == 1)
      ++version[j];
    else if (++errors < 3)
      note("peer-postgres append: {}", PQerrorMessage(c.get()));
    if (i % 1024 == 0 && stop_requested.load()) break;
  }
  return errors;
}

// `events` appends from `clients` connections (threads) on a fresh table; events/s.
double pg_append(const pg::server& s, durability d, std::int64_t events, int clients,
                 const std::string& body, long& errors) {
  {
    pg::conn admin(s.conninfo());
    create_schema(admin);
  }
  std::vector<std::unique_ptr<pg::conn>> conns;
  for (int t = 0; t < clients; ++t) {
    conns.push_back(std::make_unique<pg::conn>(s.conninfo()));
    set_durability(*conns.back(), d);
    conns.back()->prepare("append", append_sql, 4);
  }
  std::vector<long> errs(static_cast<std::size_t>(clients), 0);
  auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      errs[static_cast<std::size_t>(t)] =
          append_share(*conns[static_cast<std::size_t>(t)], t, clients, events / clients, body);
    });
  for (auto& th : threads) th.join();
  double rate = static_cast<double>(events / clients * clients) / seconds_since(t0);
  check_stop();
  for (long x : errs) errors += x;
  return rate;
}

}  // namespace

void run_appends(const env& e, const pg::server& s) {
  struct work {
    int clients;
    std::int64_t events;
    bool js_async;
  };
  const std::string body = make_body(static_cast<std::size_t>(e.opt.payload_bytes));
  const std::int64_t n = e.opt.events.value_or(10'000);
  for (const work w : {work{1, n, false}, work{8, 10 * n, true}}) {
    std::vector<double> js_rates, pg_rates[2];
    long js_errors = 0, pg_errors[2] = {0, 0};
    for (int run = 0; run < e.opt.runs; ++run) {
      alternate(
          run,
          [&] {
            for (auto d : durabilities) {
              auto k = static_cast<std::size_t>(d);
              pg_rates[k].push_back(pg_append(s, d, w.events, w.clients, body, pg_errors[k]));
              note("peer-postgres append run {}: PostgreSQL {} clients {} {:.0f}/s", run + 1,
                   w.clients, name(d), pg_rates[k].back());
            }
          },
          [&] {
            stream_guard g(e, fmt::format("BENCH_PEER_A{}_{}_{}", w.clients, e.tag, run));
            long errors = 0;
            js_rates.push_back(jetsource_append(e, g.name(), w.events, w.js_async, errors));
            js_errors += errors;
            note("peer-postgres append run {}: jetsource {} {:.0f}/s", run + 1,
                 w.js_async ? "append_async" : "append", js_rates.back());
          });
    }
    auto js = summarize(js_rates);
    for (auto d : durabilities) {
      auto k = static_cast<std::size_t>(d);
      auto pg = summarize(pg_rates[k]);
      line("peer-postgres")
          .kv("work", "append")
          .kv("clients", w.clients)
          .kv("events", w.events)
          .kv("aggregates", aggregates)
          .kv("payload_bytes", e.opt.payload_bytes)
          .kv("durability", name(d))
          .stats("postgres_events_per_s", pg)
          .kv("postgres_errors", pg_errors[k])
          .kv("jetsource_method", w.js_async ? "append_async" : "append")
          .kv("jetsource_clients", 1)
          .kv("jetsource_durability", jetsource_durability)
          .stats("jetsource_events_per_s", js)
          .kv("jetsource_errors", js_errors)
          .kv("runs", e.opt.runs)
          .kv("ratio", js.median / pg.median)
          .print();
    }
  }
}

}  // namespace peer

void run_peer_postgres(const env& e) {
  pg::server s;
  line("peer-postgres")
      .kv("work", "setup")
      .kv("postgres_version", s.version())
      .kv("postgres_config", "initdb_defaults")
      .kv("jetsource_durability", peer::jetsource_durability)
      .kv("runs", e.opt.runs)
      .print();
  peer::run_appends(e, s);
  peer::run_loads(e, s);
  peer::run_projection(e, s);
}

}  // namespace bench
