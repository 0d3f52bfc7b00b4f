// jetsource-bench peer-postgres (c): cold loads of scattered aggregates (peer.hpp).
//
// Both sides hold the same aggregates (10 of 1,000 events, 10 of 20) scattered through the same
// number of commits (100k; 1M too with --peer-1m), the other commits 10,000 other accounts'
// deposits. jetsource: load's fill (bench/load.cpp), then load() of a running
// repository<bank::account> with default options (whatever the default path is; load() keeps no
// cache: what a command on an aggregate not in the cache pays, as PostgreSQL's side queries on an
// open connection with a prepared statement); beside it the same through a repository constructed
// for the load (jetsource_fresh_repository_us), through a connection without a separate read
// connection (jetsource_one_connection_us: heads read through nats.c's reader thread) and the
// floor of any load, one raw DirectGet of the aggregate's head (jetsource_floor_us).
// PostgreSQL: the same events COPYed in the same shuffled order, VACUUM ANALYZE, then per load a
// prepared SELECT of the stream's rows in version order, each payload decoded with the same
// event registry and applied to a bank::account (postgres_query_us: the SELECT alone).
// Cold = not in the application's memory; both servers' caches are as the fill left them.
#include "../load_raw.hpp"
#include "../read_side.hpp"
#include "jetsource_side.hpp"
#include "peer.hpp"

#include <map>
#include <optional>
#include <random>

namespace bench::peer {

namespace {

using account_repo = jetsource::repository<bank::account>;
using registry = jetsource::event_registry<bank::account::event>;
using aggregate_list = std::vector<std::pair<std::string, int>>;

constexpr int per_size = 10;
constexpr int filler_aggregates = 10'000;

aggregate_list measured_set(const std::string& tag) {
  aggregate_list v;
  for (int size : {1000, 20})
    for (int j = 0; j < per_size; ++j)
      v.emplace_back(fmt::format("{}-{}-{:02}", tag, size, j), size);
  return v;
}

// The rows load's fill writes, in the same order: the measured aggregates' events shuffled (an
// AccountOpened, then Deposited{100,"d"}), other accounts' padded deposits evenly between them.
class pg_filler {
 public:
  pg_filler(pg::conn& c, std::size_t payload_bytes)
      : c_(c), filler_body_(deposit_body(100, payload_bytes)) {
    std::vector<bank::account::event> opened{bank::account_opened{"bench"}};
    std::vector<bank::account::event> deposit{bank::deposited{100, "d"}};
    opened_body_ = must(registry::encode(opened), "encode");
    deposit_body_ = must(registry::encode(deposit), "encode");
    version_.assign(filler_aggregates, 0);
  }

  void phase(const aggregate_list& aggs, std::int64_t commits, unsigned seed) {
    std::vector<std::size_t> order;
    for (std::size_t a = 0; a < aggs.size(); ++a)
      order.insert(order.end(), static_cast<std::size_t>(aggs[a].second), a);
    std::shuffle(order.begin(), order.end(), std::mt19937(seed));
    const auto m = static_cast<std::int64_t>(order.size());
    const std::int64_t f = std::max<std::int64_t>(0, commits - m);
    std::vector<int> done(aggs.size(), 0);
    std::int64_t filled = 0;
    for (std::int64_t j = 0; j < m; ++j) {
      for (std::int64_t want = (j + 1) * f / m; filled < want; ++filled) {
        auto k = static_cast<std::size_t>(n_++ % filler_aggregates);
        row(fmt::format("fill-{:05}", k), ++version_[k], "Deposited", filler_body_);
      }
      auto a = order[static_cast<std::size_t>(j)];
      int v = ++done[a];
      row(aggs[a].first, static_cast<std::uint64_t>(v), v == 1 ? "AccountOpened" : "Deposited",
          v == 1 ? opened_body_ : deposit_body_);
    }
    flush();
    c_.exec("VACUUM ANALYZE events");
  }

 private:
  void row(const std::string& id, std::uint64_t version, const char* type,
           const std::string& body) {
    pg::copy_field(text_, id);
    text_ += fmt::format("\t{}\t{}\t", version, type);
    pg::copy_field(text_, body);
    text_ += '\n';
    if (++rows_ == 50'000) flush();
  }
  void flush() {
    if (rows_ == 0) return;
    c_.copy_in("events (stream_id, version, type, payload)", text_);
    text_.clear();
    rows_ = 0;
    check_stop();
  }
  pg::conn& c_;
  std::string filler_body_, opened_body_, deposit_body_, text_;
  std::vector<std::uint64_t> version_;
  std::uint64_t n_ = 0;
  int rows_ = 0;
};

struct load_samples {
  std::vector<double> js, js_fresh, js_one_connection, floor, pg, pg_query;
  long errors = 0;
};

// `repo` null: a repository constructed for this load (and timed with it).
double load_jetsource(jetsource::event_store& store, account_repo* repo, const std::string& id,
                      int size) {
  auto t0 = clock_type::now();
  std::optional<account_repo> fresh;
  if (repo == nullptr) repo = &fresh.emplace(store);  // the defaults
  auto r = repo->load(id);
  double us = micros_since(t0);
  if (!r || r->version != static_cast<std::uint64_t>(size)) {
    note("jetsource load {}: {}", id,
         r ? fmt::format("version {}", r->version) : r.error().message);
    return -1;
  }
  return us;
}

// Query + decode + apply; `query_us` the SELECT alone.
double load_postgres(pg::conn& c, const std::string& id, int size, double& query_us) {
  auto t0 = clock_type::now();
  const char* params[] = {id.c_str()};
  pg::result r(PQexecPrepared(c.get(), "load", 1, params, nullptr, nullptr, 0));
  query_us = micros_since(t0);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || r.rows() != size) {
    note("PostgreSQL load {}: {} rows {}", id, r.rows(), PQerrorMessage(c.get()));
    return -1;
  }
  bank::account state;
  std::uint64_t version = 0;
  for (int i = 0; i < r.rows(); ++i) {
    auto events =
        registry::decode(std::string_view(r.at(i, 1), static_cast<std::size_t>(r.length(i, 1))));
    if (!events) {
      note("PostgreSQL load {}: {}", id, events.error().message);
      return -1;
    }
    for (const auto& ev : *events) jetsource::apply_event(state, ev);
    version += events->size();
  }
  double us = micros_since(t0);
  if (version != static_cast<std::uint64_t>(size) || std::atoll(r.at(r.rows() - 1, 0)) != size) {
    note("PostgreSQL load {}: version {}", id, version);
    return -1;
  }
  return us;
}

// `one_connection`: the same stream through a connection without a separate read connection.
std::map<int, load_samples> measure(const env& e, jetsource::event_store& store,
                                    jetsource::event_store& one_connection, pg::conn& c,
                                    const aggregate_list& aggs) {
  std::map<int, load_samples> by_size;
  account_repo running{store};  // the defaults; load() reads the stream each time (no cache)
  account_repo on_one{one_connection};
  const auto& stream = store.options().stream;
  for (int run = 0; run < e.opt.runs; ++run) {
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      const auto& [id, size] = aggs[i];
      auto& s = by_size[size];
      auto js = [&] {
        for (auto* repo : {&running, static_cast<account_repo*>(nullptr)}) {
          double us = load_jetsource(store, repo, id, size);
          if (us < 0)
            ++s.errors;
          else
            (repo != nullptr ? s.js : s.js_fresh).push_back(us);
          wait_no_consumers(e, stream);
        }
        if (double us = load_jetsource(one_connection, &on_one, id, size); us < 0)
          ++s.errors;
        else
          s.js_one_connection.push_back(us);
        auto subject = must(store.subject_of(bank::account::type_name, id), "subject");
        s.floor.push_back(load_raw::read_last(e, stream, subject));
      };
      auto pg = [&] {
        double q = 0, us = load_postgres(c, id, size, q);
        if (us < 0) {
          ++s.errors;
        } else {
          s.pg.push_back(us);
          s.pg_query.push_back(q);
        }
      };
      alternate(run + static_cast<int>(i), pg, js);
    }
    check_stop();
  }
  return by_size;
}

void report(const env& e, const std::map<int, load_samples>& by_size, std::uint64_t stream_events) {
  for (const auto& [size, s] : by_size) {
    auto js = summarize(s.js), pg = summarize(s.pg), q = summarize(s.pg_query),
         fresh = summarize(s.js_fresh), floor = summarize(s.floor),
         one = summarize(s.js_one_connection);
    line("peer-postgres")
        .kv("work", "load")
        .kv("events", size)
        .kv("stream_events", stream_events)
        .kv("layout", "scattered")
        .stats("postgres_us", pg)
        .kv("postgres_query_us", q.median)
        .kv("jetsource_config", "default")
        .stats("jetsource_us", js)
        .kv("jetsource_fresh_repository_us", fresh.median)
        .kv("jetsource_floor_us", floor.median)
        .kv("jetsource_one_connection_us", one.median)
        .kv("samples", js.n)
        .kv("errors", s.errors)
        .kv("runs", e.opt.runs)
        .kv("ratio", pg.median / js.median)
        .kv("ratio_query_only", q.median / js.median)
        .kv("ratio_fresh_repository", pg.median / fresh.median)
        .kv("ratio_floor", pg.median / floor.median)
        .kv("ratio_one_connection", pg.median / one.median)
        .kv("target", "ratio>=1")
        .kv("pass", pg.median >= js.median && s.errors == 0 ? 1 : 0)
        .print();
  }
}

}  // namespace

void run_loads(const env& e, const pg::server& s) {
  const std::int64_t small = 100'000, big = 1'000'000;
  stream_guard g(e, fmt::format("BENCH_PEER_LOAD_{}", e.tag));
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(g.name())), "open");
  // Heads read through nats.c's reader thread (connection_options::separate_read_connection off).
  auto one_options = e.conn->options();
  one_options.separate_read_connection = false;
  auto one_conn = must(jetsource::connection::connect(one_options), "connect");
  auto one_store =
      must(jetsource::event_store::open(one_conn, store_options_for(g.name())), "open");
  account_repo writer{store};  // the defaults (snapshots, if they are on by default)
  pg::conn c(s.conninfo());
  create_schema(c);
  pg_filler pg_fill(c, static_cast<std::size_t>(e.opt.payload_bytes));

  note("peer-postgres load: filling {} commits on both sides", small);
  auto set1 = measured_set("s");
  pg_fill.phase(set1, small, 42);
  auto n1 = fill_scattered(e, store, writer, set1, small, 42);
  c.prepare("load", "SELECT version, payload FROM events WHERE stream_id = $1 ORDER BY version", 1);
  report(e, measure(e, store, one_store, c, set1), n1);
  if (!e.opt.peer_1m) return;

  note("peer-postgres load: extending both to {} commits", big);
  auto set2 = measured_set("b");
  pg_fill.phase(set2, big - static_cast<std::int64_t>(n1), 43);
  auto n2 = fill_scattered(e, store, writer, set2, big - static_cast<std::int64_t>(n1), 43);
  report(e, measure(e, store, one_store, c, set2), n2);
}

}  // namespace bench::peer
