// jetsource-bench peer-postgres (d): a projection of deposits into a balance per account
// (peer.hpp).
//
// Both sides: 200,000 deposits (20 x --events) round-robin over 50,000 accounts (5 x --events;
// project's fill and body). jetsource: the projector of the project scenario's bench projection (an
// upsert per event plus its dedup row per aggregate), 1 worker, batch 500. PostgreSQL, as Marten's
// async daemon does it: a page of 500 events in global order (position > checkpoint), each payload
// decoded with the same event registry, then one transaction of an upsert per event and the
// checkpoint's update, sent as one libpq pipeline (Marten batches a page's commands into one round
// trip too).
#include "../read_side.hpp"
#include "peer.hpp"

#include <bank/account.hpp>

namespace bench::peer {

namespace {

using registry = jetsource::event_registry<bank::account::event>;

constexpr int page = 500;

void fill_postgres(pg::conn& c, std::int64_t events, int accounts, std::size_t payload_bytes) {
  create_schema(c);
  const auto body = deposit_body(100, payload_bytes);
  std::string text;
  for (std::int64_t i = 0; i < events; ++i) {
    text += fmt::format("{}\t{}\tDeposited\t", account_id(static_cast<int>(i % accounts)),
                        i / accounts + 1);
    pg::copy_field(text, body);
    text += '\n';
    if ((i + 1) % 50'000 == 0 || i + 1 == events) {
      c.copy_in("events (stream_id, version, type, payload)", text);
      text.clear();
    }
  }
  c.exec("VACUUM ANALYZE events");
}

// Sends one page's transaction as a pipeline and reads its results.
void apply_page(pg::conn& c, const pg::result& rows) {
  PGconn* pc = c.get();
  if (PQenterPipelineMode(pc) != 1) throw failure("PQenterPipelineMode failed");
  int sent = 0;
  auto send = [&](const char* stmt, int n, const char* const* params) {
    int ok = stmt[0] == '!'
                 ? PQsendQueryParams(pc, stmt + 1, 0, nullptr, nullptr, nullptr, nullptr, 0)
                 : PQsendQueryPrepared(pc, stmt, n, params, nullptr, nullptr, 0);
    if (ok != 1) throw failure(fmt::format("pipeline send: {}", PQerrorMessage(pc)));
    ++sent;
  };
  send("!BEGIN", 0, nullptr);
  for (int i = 0; i < rows.rows(); ++i) {
    auto ev = registry::decode(
        std::string_view(rows.at(i, 2), static_cast<std::size_t>(rows.length(i, 2))));
    if (!ev || ev->size() != 1 || !std::holds_alternative<bank::deposited>(ev->front()))
      throw failure(fmt::format("undecodable payload at position {}", rows.at(i, 0)));
    auto cents = std::to_string(std::get<bank::deposited>(ev->front()).amount_cents);
    const char* params[] = {rows.at(i, 1), cents.c_str()};
    send("upsert", 2, params);
  }
  const char* cp[] = {rows.at(rows.rows() - 1, 0)};
  send("checkpoint", 1, cp);
  send("!COMMIT", 0, nullptr);
  if (PQpipelineSync(pc) != 1) throw failure("PQpipelineSync failed");
  for (int i = 0; i < sent; ++i) {
    pg::result r(PQgetResult(pc));
    pg::check(r, pc, "pipelined statement");
    if (PGresult* end = PQgetResult(pc)) {  // each result ends with a null
      PQclear(end);
      throw failure("pipeline: unexpected extra result");
    }
  }
  pg::result sync(PQgetResult(pc));
  if (PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) throw failure("pipeline: no sync");
  if (PQexitPipelineMode(pc) != 1) throw failure("PQexitPipelineMode failed");
}

// Projects the whole table from an empty read model; events/s.
double project_postgres(const pg::server& s, durability d, std::int64_t events) {
  pg::conn c(s.conninfo());
  c.exec("TRUNCATE balances, projection_checkpoints");
  set_durability(c, d);
  c.prepare("page",
            "SELECT position, stream_id, payload FROM events WHERE position > $1 "
            "ORDER BY position LIMIT $2",
            2);
  c.prepare("upsert",
            "INSERT INTO balances (account_id, balance_cents, deposits) VALUES ($1, $2, 1) "
            "ON CONFLICT (account_id) DO UPDATE SET balance_cents = balances.balance_cents + "
            "excluded.balance_cents, deposits = balances.deposits + 1",
            2);
  c.prepare("checkpoint",
            "INSERT INTO projection_checkpoints (name, position) VALUES ('balances', $1) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            1);
  auto t0 = clock_type::now();
  auto start = c.query("SELECT position FROM projection_checkpoints WHERE name = 'balances'");
  std::string checkpoint = start.rows() ? start.at(0, 0) : "0";
  const std::string limit = std::to_string(page);
  std::int64_t applied = 0;
  for (;;) {
    auto rows = c.run("page", {checkpoint.c_str(), limit.c_str()});
    if (rows.rows() == 0) break;
    apply_page(c, rows);
    applied += rows.rows();
    checkpoint = rows.at(rows.rows() - 1, 0);
    check_stop();
  }
  double rate = static_cast<double>(applied) / seconds_since(t0);
  auto total = c.query("SELECT sum(deposits) FROM balances");
  if (applied != events || std::atoll(total.at(0, 0)) != events)
    throw failure(
        fmt::format("PostgreSQL projection applied {} of {} events", total.at(0, 0), events));
  return rate;
}

}  // namespace

void run_projection(const env& e, const pg::server& s) {
  const std::int64_t events = 20 * e.opt.events.value_or(10'000);
  const int accounts = static_cast<int>(events / 4);  // 4 deposits each, as project's 500k/50k
  const std::string stream = fmt::format("BENCH_PEER_PJ_{}", e.tag);
  stream_guard g(e, stream);
  const std::uint64_t last = fill(e, "peer-postgres project", stream, events, accounts);
  {
    pg::conn c(s.conninfo());
    fill_postgres(c, events, accounts, static_cast<std::size_t>(e.opt.payload_bytes));
  }
  std::vector<double> js_rates, pg_rates[2];
  for (int run = 0; run < e.opt.runs; ++run) {
    temp_files tmp;
    alternate(
        run,
        [&] {
          for (auto d : durabilities) {
            pg_rates[static_cast<std::size_t>(d)].push_back(project_postgres(s, d, events));
            note("peer-postgres project run {}: PostgreSQL {} {:.0f}/s", run + 1, name(d),
                 pg_rates[static_cast<std::size_t>(d)].back());
          }
        },
        [&] {
          auto consumer = fmt::format("peer-pj-{}", run);
          jetsource::projector_options o;
          o.stream = stream;
          o.database = tmp.dir / "peer.db";
          o.workers = 1;
          o.batch = page;
          o.consumer = consumer;
          js_rates.push_back(project_until(e, o, last));
          delete_consumer(e, stream, consumer);
          note("peer-postgres project run {}: jetsource {:.0f}/s", run + 1, js_rates.back());
        });
  }
  auto js = summarize(js_rates);
  for (auto d : durabilities) {
    auto pg = summarize(pg_rates[static_cast<std::size_t>(d)]);
    line("peer-postgres")
        .kv("work", "project")
        .kv("events", events)
        .kv("aggregates", accounts)
        .kv("batch", page)
        .kv("durability", name(d))
        .stats("postgres_events_per_s", pg)
        .kv("jetsource_workers", 1)
        .kv("jetsource_durability", "sqlite_wal_synchronous_normal")
        .stats("jetsource_events_per_s", js)
        .kv("runs", e.opt.runs)
        .kv("ratio", js.median / pg.median)
        .print();
  }
}

}  // namespace bench::peer
