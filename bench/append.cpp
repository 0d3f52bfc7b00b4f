// append-sync and append-async: event_store::append / append_async beside plain nats.c
// js_PublishMsg / js_PublishMsgAsync with the same headers, body size, subjects and optimistic
// concurrency (expected last subject sequence chained per aggregate, 0 = must be new).
#include "bench.hpp"
#include "peer/jetsource_side.hpp"

#include <cstdlib>
#include <memory>

namespace bench {

namespace {

constexpr int aggregates = 10'000;

std::vector<std::string> aggregate_ids(int n) {
  std::vector<std::string> ids;
  ids.reserve(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) ids.push_back(fmt::format("acct-{:05}", k));
  return ids;
}

struct run_result {
  double events_per_s = 0;
  long errors = 0;
};

// -- jetsource ------------------------------------------------------------------------------------

run_result jetsource_sync(const env& e, const std::string& stream, std::int64_t events,
                          const std::string& body) {
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  auto ids = aggregate_ids(aggregates);
  std::vector<std::uint64_t> last(aggregates, 0), version(aggregates, 0);
  jetsource::commit c;
  c.aggregate_type = "Account";
  c.event_types = "Deposited";
  c.body = body;
  run_result r;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; ++i) {
    auto k = static_cast<std::size_t>(i % aggregates);
    c.aggregate_id = ids[k];
    c.expected_sequence = last[k];
    c.version = version[k] + 1;
    auto a = store.append(c);
    if (a) {
      last[k] = a->sequence;
      version[k] = a->version;
    } else if (++r.errors < 3) {
      note("append: {}", a.error());
    }
    if (i % 1024 == 0) check_stop();
  }
  r.events_per_s = static_cast<double>(events) / seconds_since(t0);
  return r;
}

run_result jetsource_async(const env& e, const std::string& stream, std::int64_t events,
                           const std::string& body) {
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(stream)), "open");
  auto ids = aggregate_ids(aggregates);
  auto last = std::make_unique<std::atomic<std::uint64_t>[]>(aggregates);
  std::vector<std::uint64_t> version(aggregates, 0);
  std::atomic<long> errors{0};
  run_result r;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; ++i) {
    auto k = static_cast<std::size_t>(i % aggregates);
    jetsource::commit c;
    c.aggregate_type = "Account";
    c.aggregate_id = ids[k];
    c.expected_sequence = last[k].load(std::memory_order_acquire);
    c.version = ++version[k];
    c.event_types = "Deposited";
    c.body = body;
    auto started = store.append_async(
        std::move(c), [&last, &errors, k](jetsource::result<jetsource::append_result> a) {
          if (a)
            last[k].store(a->sequence, std::memory_order_release);
          else if (errors.fetch_add(1) < 2)
            note("append_async: {}", a.error());
        });
    if (!started && errors.fetch_add(1) < 2) note("append_async: {}", started.error());
    if (i % 1024 == 0) check_stop();
  }
  must(store.flush(std::chrono::milliseconds{120'000}), "flush");
  r.events_per_s = static_cast<double>(events) / seconds_since(t0);
  r.errors = errors.load();
  return r;
}

// -- raw nats.c ----------------------------------------------------------------------------------

run_result raw_sync(const env& e, const std::string& stream, std::int64_t events,
                    const std::string& body) {
  auto o = store_options_for(stream);
  must(jetsource::event_store::open(*e.conn, o), "open");  // same stream configuration
  auto ids = aggregate_ids(aggregates);
  std::vector<std::string> subjects;
  for (const auto& id : ids) subjects.push_back(subject_for(o, "Account", id));
  std::vector<std::uint64_t> last(aggregates, 0), version(aggregates, 0);
  raw_commit_headers h{.timestamp = rfc3339_now()};
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 5000;
  run_result r;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; ++i) {
    auto k = static_cast<std::size_t>(i % aggregates);
    natsMsg* m = make_raw_commit(subjects[k], body, raw_msg_id(static_cast<std::uint64_t>(i)),
                                 ids[k], version[k] + 1, last[k], "Deposited", h);
    jsPubAck* pa = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&pa, e.raw_js, m, &po, &err);
    if (s == NATS_OK && pa) {
      last[k] = pa->Sequence;
      ++version[k];
    } else if (++r.errors < 3) {
      note("raw js_PublishMsg: {} {}", natsStatus_GetText(s), static_cast<int>(err));
    }
    if (pa) jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    if (i % 1024 == 0) check_stop();
  }
  r.events_per_s = static_cast<double>(events) / seconds_since(t0);
  return r;
}

struct raw_async_state {
  std::unique_ptr<std::atomic<std::uint64_t>[]> last;
  std::atomic<long> errors{0};
};

extern "C" void raw_ack_handler(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                void* closure) {
  auto* st = static_cast<raw_async_state*>(closure);
  if (pa) {
    // The aggregate index is the id's number: acct-<k>.
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Es-Aggregate-Id", &id) == NATS_OK && id)
      st->last[std::strtoul(id + 5, nullptr, 10)].store(pa->Sequence, std::memory_order_release);
  } else if (st->errors.fetch_add(1) < 2) {
    note("raw async ack error: {} {}", pae ? static_cast<int>(pae->ErrCode) : 0,
         pae && pae->ErrText ? pae->ErrText : "");
  }
  natsMsg_Destroy(msg);
}

}  // namespace

double raw_async_publish(const env& e, const std::string& stream, std::int64_t events,
                         int n_aggregates, long& errors) {
  auto o = store_options_for(stream);
  must(jetsource::event_store::open(*e.conn, o), "open");  // same stream configuration
  auto ids = aggregate_ids(n_aggregates);
  std::vector<std::string> subjects;
  for (const auto& id : ids) subjects.push_back(subject_for(o, "Account", id));
  std::vector<std::uint64_t> version(static_cast<std::size_t>(n_aggregates), 0);
  raw_async_state st;
  st.last = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(n_aggregates));
  std::string body = make_body(static_cast<std::size_t>(e.opt.payload_bytes));
  raw_commit_headers h{.timestamp = rfc3339_now()};

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  jo.PublishAsync.MaxPending = 4096;
  jo.PublishAsync.AckHandler = raw_ack_handler;
  jo.PublishAsync.AckHandlerClosure = &st;
  jsCtx* js = nullptr;
  check(natsConnection_JetStream(&js, e.raw_nc, &jo), "raw async JetStream context");
  std::unique_ptr<jsCtx, void (*)(jsCtx*)> js_owner(js, jsCtx_Destroy);

  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < events; ++i) {
    auto k = static_cast<std::size_t>(i % n_aggregates);
    natsMsg* m =
        make_raw_commit(subjects[k], body, raw_msg_id(static_cast<std::uint64_t>(i)), ids[k],
                        ++version[k], st.last[k].load(std::memory_order_acquire), "Deposited", h);
    natsStatus s = js_PublishMsgAsync(js, &m, nullptr);
    if (s != NATS_OK) {
      natsMsg_Destroy(m);
      if (st.errors.fetch_add(1) < 2) note("raw js_PublishMsgAsync: {}", natsStatus_GetText(s));
    }
    if (i % 1024 == 0) check_stop();
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 120'000;
  check(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
  double rate = static_cast<double>(events) / seconds_since(t0);
  errors = st.errors.load();
  return rate;
}

namespace {

void run_append(const env& e, bool async) {
  const std::string scenario = async ? "append-async" : "append-sync";
  const std::int64_t events = e.opt.events.value_or(async ? 100'000 : 10'000);
  const std::string body = make_body(static_cast<std::size_t>(e.opt.payload_bytes));
  const double target = async ? 0.8 : 0.9;
  std::vector<double> js_rates, raw_rates, paired;
  long js_errors = 0, raw_errors = 0;
  for (int run = 0; run < e.opt.runs; ++run) {
    const std::string base = fmt::format("BENCH_{}_{}_{}", async ? "AA" : "AS", e.tag, run);
    run_result j, raw;
    auto do_js = [&] {
      stream_guard g(e, base + "_J");
      j = async ? jetsource_async(e, g.name(), events, body)
                : jetsource_sync(e, g.name(), events, body);
    };
    auto do_raw = [&] {
      stream_guard g(e, base + "_R");
      if (async) {
        raw.events_per_s = raw_async_publish(e, g.name(), events, aggregates, raw.errors);
      } else {
        raw = raw_sync(e, g.name(), events, body);
      }
    };
    alternate(run, do_raw, do_js);
    note("{} run {}: jetsource {:.0f}/s, raw {:.0f}/s", scenario, run + 1, j.events_per_s,
         raw.events_per_s);
    js_rates.push_back(j.events_per_s);
    raw_rates.push_back(raw.events_per_s);
    paired.push_back(j.events_per_s / raw.events_per_s);
    js_errors += j.errors;
    raw_errors += raw.errors;
  }
  auto js = summarize(js_rates), raw = summarize(raw_rates), pr = summarize(paired);
  double ratio = js.median / raw.median;
  line("raw_" + scenario)
      .stats("events_per_s", raw)
      .kv("us_per_event", 1e6 / raw.median)
      .kv("events", events)
      .kv("aggregates", aggregates)
      .kv("payload_bytes", e.opt.payload_bytes)
      .kv("runs", e.opt.runs)
      .kv("errors", raw_errors)
      .print();
  line(scenario)
      .stats("events_per_s", js)
      .kv("us_per_event", 1e6 / js.median)
      .kv("events", events)
      .kv("aggregates", aggregates)
      .kv("payload_bytes", e.opt.payload_bytes)
      .kv("runs", e.opt.runs)
      .kv("errors", js_errors)
      .kv("ratio", ratio)
      .kv("ratio_paired", pr.median)
      .kv("target", fmt::format("ratio>={}", target))
      .kv("pass", ratio >= target && js_errors == 0 ? 1 : 0)
      .print();
}

}  // namespace

// peer-postgres's jetsource side (bench/peer/jetsource_side.hpp).
double jetsource_append(const env& e, const std::string& stream, std::int64_t events, bool async,
                        long& errors) {
  const std::string body = make_body(static_cast<std::size_t>(e.opt.payload_bytes));
  run_result r =
      async ? jetsource_async(e, stream, events, body) : jetsource_sync(e, stream, events, body);
  errors = r.errors;
  return r.events_per_s;
}

void run_append_sync(const env& e) {
  run_append(e, false);
}
void run_append_async(const env& e) {
  run_append(e, true);
}

}  // namespace bench
