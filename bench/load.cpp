// load: cold loads through repository<bank::account>::load (a fresh repository per load) of
// aggregates of 100, 1000 and 1050 events, with and without snapshots, on a stream of 100k and
// of 1M commits, beside the fastest plain nats.c read of the same subject (a DirectGet
// LastBySubject + NextBySubject loop, and an ordered consumer).
//
// The measured aggregates' commits are scattered through the stream, as in real life: they are
// written (through a repository with snapshot_every = 100) interleaved with async publishes of
// 10,000 other aggregates' commits. The 100k stream is measured first, then extended to 1M
// (--events) with a second set of measured aggregates scattered through the extension. Finally a
// set of aggregates written contiguously at the end of the big stream shows the other extreme.
//
// The defaults (ADR 0017, `config=default` lines): aggregates of 20 and 1000 events written and
// loaded by repositories with default options (a snapshot at the head), scattered the same way,
// beside the floor of any load: one DirectGet LastBySubject.
#include "bench.hpp"
#include "load_raw.hpp"
#include "peer/jetsource_side.hpp"

#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <tuple>

namespace bench {

using load_raw::quiesce;
using load_raw::read_direct;
using load_raw::read_head_and_snapshot;
using load_raw::read_indexed;
using load_raw::read_last;
using load_raw::read_ordered;
using load_raw::sequences_of;

namespace {

using account_repo = jetsource::repository<bank::account>;
using registry = jetsource::event_registry<bank::account::event>;

constexpr int per_size = 10;  // distinct aggregates read per case
constexpr int filler_aggregates = 10'000;
constexpr std::uint64_t snapshot_every = 100;

struct measured {
  std::string id;
  int size = 0;
  bool defaults = false;  // written and loaded with default repository options
};

// The other aggregates' traffic: plain nats.c async publishes of valid commits (jetsource's
// headers and a Deposited body) on the raw connection, without Nats-Msg-Id or an expected
// sequence. The stream's layout is what matters here; this fills it ~3x faster than
// append_async (no duplicate tracking) and never queues in front of the measured aggregates'
// synchronous commits, which go through the jetsource connection.
extern "C" void filler_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* errors = static_cast<std::atomic<long>*>(closure);
  if (!pa && errors->fetch_add(1) < 2)
    note("filler ack error: {}", pae && pae->ErrText ? pae->ErrText : "?");
  natsMsg_Destroy(msg);
}

class filler {
 public:
  filler(const env& e, const jetsource::store_options& o, std::size_t payload_bytes)
      : timestamp_(rfc3339_now()) {
    version_.assign(filler_aggregates, 0);
    std::vector<bank::account::event> ev{bank::deposited{100, ""}};
    auto probe = must(registry::encode(ev), "encode");
    std::size_t pad = payload_bytes > probe.size() ? payload_bytes - probe.size() : 0;
    ev = {bank::deposited{100, std::string(pad, 'n')}};
    body_ = must(registry::encode(ev), "encode");
    for (int k = 0; k < filler_aggregates; ++k) {
      ids_.push_back(fmt::format("fill-{:05}", k));
      subjects_.push_back(subject_for(o, bank::account::type_name, ids_.back()));
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.AckHandler = filler_ack;
    jo.PublishAsync.AckHandlerClosure = &errors_;
    check(natsConnection_JetStream(&js_, e.raw_nc, &jo), "filler JetStream context");
  }
  filler(const filler&) = delete;
  filler& operator=(const filler&) = delete;
  ~filler() {
    flush();
    jsCtx_Destroy(js_);
  }

  void append() {
    auto k = static_cast<std::size_t>(n_++ % filler_aggregates);
    natsMsg* m = nullptr;
    check(natsMsg_Create(&m, subjects_[k].c_str(), nullptr, body_.data(),
                         static_cast<int>(body_.size())),
          "natsMsg_Create");
    auto version = std::to_string(++version_[k]);
    natsMsgHeader_Set(m, "Es-Aggregate-Type", "Account");
    natsMsgHeader_Set(m, "Es-Aggregate-Id", ids_[k].c_str());
    natsMsgHeader_Set(m, "Es-Version", version.c_str());
    natsMsgHeader_Set(m, "Es-Events", "Deposited");
    natsMsgHeader_Set(m, "Content-Type", "application/json");
    natsMsgHeader_Set(m, "Es-Timestamp", timestamp_.c_str());
    natsStatus s = js_PublishMsgAsync(js_, &m, nullptr);
    if (s != NATS_OK) {
      natsMsg_Destroy(m);
      if (errors_.fetch_add(1) < 2) note("filler publish: {}", natsStatus_GetText(s));
    }
  }
  void flush() {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 300'000;
    natsStatus s = js_PublishAsyncComplete(js_, &po);
    if (s != NATS_OK) note("filler flush: {}", natsStatus_GetText(s));
  }
  long errors() const { return errors_.load(); }

 private:
  jsCtx* js_ = nullptr;
  std::string timestamp_;
  std::string body_;
  std::vector<std::string> ids_, subjects_;
  std::vector<std::uint64_t> version_;
  std::uint64_t n_ = 0;
  std::atomic<long> errors_{0};
};

// Pipelined (execute_async: one aggregate's commands stay in order), so the fill is not bound by
// a round trip per measured commit.
void command(account_repo& writer, const measured& m, int nth, std::atomic<long>& errors) {
  auto done = [&errors, id = m.id](jetsource::result<jetsource::executed> r) {
    if (!r && errors.fetch_add(1) < 2) note("execute on {}: {}", id, r.error());
  };
  jetsource::result<void> r =
      nth == 0 ? writer.execute_async(m.id, bank::open_account{.owner = "bench"}, done)
               : writer.execute_async(m.id, bank::deposit{.amount_cents = 100, .note = "d"}, done);
  if (!r && errors.fetch_add(1) < 2) note("execute on {}: {}", m.id, r.error());
}

// The two writers: the measured aggregates of the existing lines (snapshot_every = 100), and those
// of the `config=default` lines (default options).
struct writers {
  account_repo& tuned;
  account_repo& defaults;
  account_repo& of(const measured& m) { return m.defaults ? defaults : tuned; }
  void flush() {
    must(tuned.flush(std::chrono::milliseconds{300'000}), "flush");
    must(defaults.flush(std::chrono::milliseconds{300'000}), "flush");
  }
};

// Appends `commits` commits in all: every event of `aggs` (one commit each, through `writer`,
// in a shuffled order so each subject spans the whole phase), the rest filler.
void fill_phase(jetsource::event_store& store, writers& writer, filler& fill,
                const std::vector<measured>& aggs, std::int64_t commits, unsigned seed) {
  std::vector<std::size_t> order;
  for (std::size_t a = 0; a < aggs.size(); ++a)
    order.insert(order.end(), static_cast<std::size_t>(aggs[a].size), a);
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  const auto m = static_cast<std::int64_t>(order.size());
  const std::int64_t f = std::max<std::int64_t>(0, commits - m);
  std::vector<int> done(aggs.size(), 0);
  std::int64_t filled = 0;
  std::atomic<long> errors{0};
  auto t0 = clock_type::now();
  for (std::int64_t j = 0; j < m; ++j) {
    for (std::int64_t want = (j + 1) * f / m; filled < want; ++filled) fill.append();
    auto a = order[static_cast<std::size_t>(j)];
    command(writer.of(aggs[a]), aggs[a], done[a]++, errors);
    if (j % 1024 == 0) {
      writer.flush();  // keeps the measured commits spread through the phase, not queued ahead
      check_stop();
      if (j % 8192 == 0)
        note("  fill: {} of {} commits, {:.1f} s", filled + j, f + m, seconds_since(t0));
    }
  }
  fill.flush();
  writer.flush();
  must(store.flush(std::chrono::milliseconds{300'000}), "flush");
  note("  fill: {} commits ({} measured, {} filler) in {:.1f} s, errors {} + {}", f + m, m, f,
       seconds_since(t0), errors.load(), fill.errors());
}

// The same with one writer for every aggregate (peer-postgres's fill, bench/peer).
[[maybe_unused]] void fill_phase(jetsource::event_store& store, account_repo& writer, filler& fill,
                                 const std::vector<measured>& aggs, std::int64_t commits,
                                 unsigned seed) {
  writers one{writer, writer};
  fill_phase(store, one, fill, aggs, commits, seed);
}

// Writes each aggregate's commits one after the other (contiguous subjects).
void write_contiguous(jetsource::event_store& store, writers& writer,
                      const std::vector<measured>& aggs) {
  std::atomic<long> errors{0};
  for (const auto& a : aggs) {
    for (int n = 0; n < a.size; ++n) command(writer.of(a), a, n, errors);
    writer.flush();  // one aggregate after the other
    check_stop();
  }
  must(store.flush(std::chrono::milliseconds{60'000}), "flush");
}

// -- one read of each kind; microseconds, or < 0 on a wrong result --------------------------------

double load_jetsource(jetsource::event_store& store, const measured& m, bool snapshot,
                      bool defaults = false) {
  auto t0 = clock_type::now();
  std::optional<account_repo> repo;
  if (defaults)
    repo.emplace(store);
  else
    repo.emplace(store, jetsource::repository_options{
                            .cache_capacity = 0, .snapshot_every = snapshot ? snapshot_every : 0});
  auto r = repo->load(m.id);
  double us = micros_since(t0);
  if (!r) {
    note("load {}: {}", m.id, r.error());
    return -1;
  }
  if (r->version != static_cast<std::uint64_t>(m.size)) {
    note("load {}: version {}, expected {}", m.id, r->version, m.size);
    return -1;
  }
  return us;
}

enum method {
  js_plain,
  js_snapshot,
  raw_direct,
  raw_ordered,
  js_default,
  raw_last,
  raw_indexed,
  raw_two_gets,
  raw_paired,
  js_default_fresh,
  n_methods
};

struct samples {
  std::vector<double> us[n_methods];
  long errors = 0;
};

// Measures every aggregate of `aggs` with the four methods, `runs` times, rotating which method
// goes first (the first read of a subject warms the server's caches for the others).
std::map<int, samples> measure(const env& e, jetsource::event_store& store,
                               const std::vector<measured>& aggs) {
  std::map<int, samples> by_size;
  std::map<std::string, std::vector<std::uint64_t>> index;  // the defaults' aggregates' sequences
  account_repo running{store};                              // default options, made once
  const auto& stream = store.options().stream;
  for (int run = 0; run < e.opt.runs; ++run) {
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      const auto& a = aggs[i];
      auto subject = must(store.subject_of(bank::account::type_name, a.id), "subject");
      auto& s = by_size[a.defaults ? -a.size : a.size];  // < 0: the defaults' lines
      // The defaults' aggregates: the default load and the floor; the others: the first four.
      const int first = a.defaults ? js_default : js_plain, n = a.defaults ? 6 : 4;
      if (a.defaults && !index.contains(a.id)) {
        index[a.id] = sequences_of(e, stream, subject);
        quiesce(e, stream);
      }
      for (int step = 0; step < n; ++step) {
        auto meth = static_cast<method>(first + (step + run + static_cast<int>(i)) % n);
        double us = 0;
        switch (meth) {
          case js_default: {  // a running service's repository: load() has no cache
            auto t0 = clock_type::now();
            auto r = running.load(a.id);
            us = micros_since(t0);
            if (!r || r->version != static_cast<std::uint64_t>(a.size)) us = -1;
            break;
          }
          case js_default_fresh:  // a repository made for the load, as the other lines
            us = load_jetsource(store, a, true, true);
            break;
          case raw_last:
            us = read_last(e, stream, subject);
            break;
          case raw_two_gets:
          case raw_paired:
            us = read_head_and_snapshot(
                e, stream, subject, stream + "_SNAPSHOTS",
                fmt::format("jetsource-snapshots.{}.{}.{}", stream, bank::account::type_name, a.id),
                meth == raw_paired);
            break;
          case raw_indexed:
            us = read_indexed(e, stream, subject, index[a.id]);
            break;
          case js_plain:
            us = load_jetsource(store, a, false);
            break;
          case js_snapshot:
            us = load_jetsource(store, a, true);
            break;
          case raw_direct:
            us = read_direct(e, stream, subject, a.size);
            break;
          case raw_ordered:
            us = read_ordered(e, stream, subject, a.size);
            break;
          case n_methods:
            break;
        }
        if (us < 0)
          ++s.errors;
        else
          s.us[meth].push_back(us);
        quiesce(e, stream);
      }
      check_stop();
    }
  }
  return by_size;
}

// The `config=default` lines (ADR 0017); `floor_us_median`: one DirectGet LastBySubject. The
// target for 1000 events is PostgreSQL's 1.2 ms of issue 17 (the peer bench measures its own).
void report_defaults(const samples& s, int size, std::uint64_t stream_events, const char* layout) {
  auto js = summarize(s.us[js_default]), floor = summarize(s.us[raw_last]),
       indexed = summarize(s.us[raw_indexed]), two = summarize(s.us[raw_two_gets]),
       paired = summarize(s.us[raw_paired]), fresh = summarize(s.us[js_default_fresh]);
  line l("load");
  l.kv("events", size)
      .kv("stream_events", stream_events)
      .kv("layout", layout)
      .kv("config", "default")
      .kv("us_median", js.median)
      .kv("us_min", js.min)
      .kv("us_max", js.max)
      .kv("samples", js.n)
      .kv("errors", s.errors)
      .kv("floor_us_median", floor.median)
      .kv("ratio_floor", js.median / floor.median)
      .kv("indexed_us_median", indexed.median)
      .kv("raw_two_gets_us_median", two.median)
      .kv("raw_paired_us_median", paired.median)
      .kv("fresh_repository_us_median", fresh.median);
  if (size == 1000)
    l.kv("target", "us<=1200").kv("pass", js.median <= 1200 && s.errors == 0 ? 1 : 0);
  l.print();
}

void report(const std::map<int, samples>& by_size, std::uint64_t stream_events,
            const char* layout) {
  for (const auto& [key, s] : by_size) {
    if (key < 0) {
      report_defaults(s, -key, stream_events, layout);
      continue;
    }
    const int size = key;
    auto direct = summarize(s.us[raw_direct]), ordered = summarize(s.us[raw_ordered]);
    bool direct_best = direct.median <= ordered.median;
    double best = direct_best ? direct.median : ordered.median;
    for (auto [meth, name, sum, is_best] :
         {std::tuple{raw_direct, "direct", direct, direct_best},
          std::tuple{raw_ordered, "ordered", ordered, !direct_best}}) {
      (void)meth;
      line("raw_load")
          .kv("events", size)
          .kv("stream_events", stream_events)
          .kv("layout", layout)
          .kv("method", name)
          .kv("us_median", sum.median)
          .kv("us_min", sum.min)
          .kv("us_max", sum.max)
          .kv("samples", sum.n)
          .kv("best", is_best ? 1 : 0)
          .print();
    }
    for (bool snap : {false, true}) {
      auto js = summarize(s.us[snap ? js_snapshot : js_plain]);
      line l("load");
      l.kv("events", size)
          .kv("snapshot", snap ? 1 : 0)
          .kv("stream_events", stream_events)
          .kv("layout", layout);
      l.kv("us_median", js.median).kv("us_min", js.min).kv("us_max", js.max);
      if (snap) l.kv("tail_events", static_cast<std::uint64_t>(size) % snapshot_every);
      l.kv("samples", js.n).kv("errors", s.errors).kv("ratio", js.median / best);
      if (size == 1000 && !snap)
        l.kv("target", "ratio<=1.2").kv("pass", js.median / best <= 1.2 && s.errors == 0 ? 1 : 0);
      if (size == 1000 && snap)
        l.kv("target", "us<=2000").kv("pass", js.median <= 2000 && s.errors == 0 ? 1 : 0);
      l.print();
    }
  }
}

std::vector<measured> measured_set(const std::string& tag) {
  std::vector<measured> v;
  for (int size : {100, 1000, 1050})
    for (int j = 0; j < per_size; ++j)
      v.push_back({fmt::format("{}-{}-{:02}", tag, size, j), size});
  for (int size : {20, 1000})
    for (int j = 0; j < per_size; ++j)
      v.push_back({fmt::format("{}-d{}-{:02}", tag, size, j), size, true});
  return v;
}

}  // namespace

// peer-postgres's jetsource side (bench/peer/jetsource_side.hpp).
std::uint64_t fill_scattered(const env& e, jetsource::event_store& store, account_repo& writer,
                             const std::vector<std::pair<std::string, int>>& aggregates,
                             std::int64_t commits, unsigned seed) {
  filler fill(e, store.options(), static_cast<std::size_t>(e.opt.payload_bytes));
  std::vector<measured> aggs;
  for (const auto& [id, size] : aggregates) aggs.push_back({id, size});
  fill_phase(store, writer, fill, aggs, commits, seed);
  return must(store.last_sequence(), "last sequence");
}
void wait_no_consumers(const env& e, const std::string& stream) {
  quiesce(e, stream);
}

void run_load(const env& e) {
  const std::int64_t big = e.opt.events.value_or(1'000'000);
  const std::int64_t small = std::min<std::int64_t>(100'000, big);
  stream_guard g(e, fmt::format("BENCH_LOAD_{}", e.tag));
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(g.name())), "open");
  account_repo tuned{store, {.snapshot_every = snapshot_every}};
  account_repo defaults{store};
  writers writer{tuned, defaults};
  filler fill(e, store.options(), static_cast<std::size_t>(e.opt.payload_bytes));

  note("load: filling a {}-commit stream (measured aggregates scattered)", small);
  auto set1 = measured_set("s");
  fill_phase(store, writer, fill, set1, small, 42);
  auto n1 = must(store.last_sequence(), "last sequence");
  note("load: measuring on {} commits", n1);
  report(measure(e, store, set1), n1, "scattered");

  if (big > small) {
    note("load: extending the stream to {} commits", big);
    auto set2 = measured_set("b");
    fill_phase(store, writer, fill, set2, big - static_cast<std::int64_t>(n1), 43);
    auto n2 = must(store.last_sequence(), "last sequence");
    note("load: measuring on {} commits", n2);
    report(measure(e, store, set2), n2, "scattered");
  }

  note("load: appending {} contiguous 1000-event aggregates", per_size);
  std::vector<measured> set3;
  for (int j = 0; j < per_size; ++j) set3.push_back({fmt::format("c-1000-{:02}", j), 1000});
  write_contiguous(store, writer, set3);
  auto n3 = must(store.last_sequence(), "last sequence");
  report(measure(e, store, set3), n3, "contiguous");
}

}  // namespace bench
