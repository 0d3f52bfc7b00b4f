// instr-*: the small, single-purpose runs that bench/callgrind.sh counts instructions of under
// `valgrind --tool=callgrind` (a steady yardstick on a noisy machine: docs/performance.md,
// "Instruction counts"). Each does one kind of work N times and nothing else (no raw baseline,
// no repetition), so that the difference between a run with N and one with 2N, divided by N, is
// the client's instructions per unit of that work, start-up and set-up cancelled out.
//
//   instr-fill    --events N   not counted: stream BENCH_INSTR_<N>, N one-event commits
//                              (Deposited) of one account, acct-00000, by append_async
//   instr-append  --events N   N one-event commits by event_store::append (sync), round-robin
//                              over 10 aggregates, on a stream of its own (deleted after)
//   instr-load    --events N   one cold load of acct-00000 from BENCH_INSTR_<N> (a fresh
//                              repository<bank::account>, no cache, no snapshots)
//   instr-cold-load --events N  N cold loads (load() of a running default repository: one get
//                              of the head, which carries the state) of a 20-event account
//                              written on a stream of its own (deleted after);
//                              instr-cold-load-raw: the same get by js_DirectGetMsg, undecoded
//   instr-project --events N   the bench projection over BENCH_INSTR_<N> by a projector with its
//                              default options, into a fresh SQLite file, until all is applied
//   instr-pipeline --events N  the raw pipeline of `project` (read_side.hpp: plain nats.c pull +
//                              plain SQLite, the projector's defaults) over the same stream: the
//                              hand-written baseline of instr-project, in instructions (it
//                              decodes each body, as a projection must)
//   instr-pipeline-nodecode --events N  the same without reading the bodies
//
// They need the streams of instr-fill, so a server that outlives the process: --nats-url.
#include "bench.hpp"
#include "load_raw.hpp"
#include "read_side.hpp"

#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <unistd.h>

namespace bench {

namespace {

std::int64_t events_of(const env& e) {
  if (!e.opt.events) throw failure("instr-*: give --events N");
  return *e.opt.events;
}

std::string filled_stream(std::int64_t n) {
  return fmt::format("BENCH_INSTR_{}", n);
}

}  // namespace

void run_instr_fill(const env& e) {
  const auto n = events_of(e);
  const auto last = fill(e, "instr-fill", filled_stream(n), n, 1);
  line("instr_fill").kv("events", n).kv("stream", filled_stream(n)).kv("last", last).print();
}

void run_instr_append(const env& e) {
  const auto n = events_of(e);
  stream_guard g(e, fmt::format("BENCH_INSTR_A_{}_{}", n, ::getpid()));
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(g.name())), "open");
  constexpr std::size_t aggregates = 10;
  std::vector<std::string> ids;
  for (std::size_t k = 0; k < aggregates; ++k) ids.push_back(account_id(static_cast<int>(k)));
  std::vector<std::uint64_t> last(aggregates, 0), version(aggregates, 0);
  jetsource::commit c;
  c.aggregate_type = "Account";
  c.event_types = "Deposited";
  c.body = deposit_body(100, static_cast<std::size_t>(e.opt.payload_bytes));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i) % aggregates;
    c.aggregate_id = ids[k];
    c.expected_sequence = last[k];
    c.version = version[k] + 1;
    auto a = store.append(c);
    if (!a) throw failure(fmt::format("append: {}", a.error()));
    last[k] = a->sequence;
    version[k] = a->version;
  }
  line("instr_append").kv("events", n).print();
}

void run_instr_load(const env& e) {
  const auto n = events_of(e);
  auto store =
      must(jetsource::event_store::open(*e.conn, store_options_for(filled_stream(n))), "open");
  jetsource::repository<bank::account> repo{store, {.cache_capacity = 0, .snapshot_every = 0}};
  auto r = must(repo.load(account_id(0)), "load");
  if (r.version != static_cast<std::uint64_t>(n))
    throw failure(
        fmt::format("load: version {}, expected {} (run instr-fill first)", r.version, n));
  line("instr_load").kv("events", n).kv("version", r.version).print();
}

// N cold loads of one 20-event account written by a default repository (its state carried by
// its head commit, ADR 0022) through a running default repository: load() reads the head each
// time. `raw`: the same get with plain nats.c (js_DirectGetMsg), undecoded (load_raw.hpp).
void instr_cold_load(const env& e, bool raw) {
  const auto n = events_of(e);
  stream_guard g(e, fmt::format("BENCH_INSTR_C_{}_{}", n, ::getpid()));
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(g.name())), "open");
  jetsource::repository<bank::account> repo{store};
  const std::string id = account_id(0);
  must(repo.execute(id, bank::open_account{"bench", 0}), "open account");
  for (int v = 1; v < 20; ++v) must(repo.execute(id, bank::deposit{100, "d"}), "deposit");
  const auto subject = must(store.subject_of(bank::account::type_name, id), "subject");
  for (std::int64_t i = 0; i < n; ++i) {
    if (raw) {
      if (load_raw::read_last(e, g.name(), subject) < 0) throw failure("raw cold load failed");
      continue;
    }
    auto r = must(repo.load(id), "load");
    if (r.version != 20) throw failure(fmt::format("load: version {}, expected 20", r.version));
  }
  line(raw ? "instr_cold_load_raw" : "instr_cold_load").kv("loads", n).print();
}

void run_instr_cold_load(const env& e) {
  instr_cold_load(e, false);
}
void run_instr_cold_load_raw(const env& e) {
  instr_cold_load(e, true);
}

void run_instr_project(const env& e) {
  const auto n = events_of(e);
  temp_files tmp;
  jetsource::projector_options o;
  o.stream = filled_stream(n);
  o.database = tmp.dir / "instr.db";
  o.consumer = fmt::format("instr-{}", ::getpid());
  project_until(e, o, static_cast<std::uint64_t>(n));
  delete_consumer(e, o.stream, o.consumer);
  line("instr_project").kv("events", n).print();
}

namespace {
void instr_pipeline(const env& e, bool decode, const char* name) {
  const auto n = events_of(e);
  temp_files tmp;
  const jetsource::projector_options defaults;
  raw_pipeline(e, filled_stream(n), static_cast<std::uint64_t>(n), tmp.dir / "pipeline.db",
               {defaults.batch, defaults.max_group,
                static_cast<std::int64_t>(defaults.max_buffered), false, decode});
  line(name).kv("events", n).print();
}
}  // namespace

void run_instr_pipeline(const env& e) {
  instr_pipeline(e, true, "instr_pipeline");
}

void run_instr_pipeline_nodecode(const env& e) {
  instr_pipeline(e, false, "instr_pipeline_nodecode");
}

}  // namespace bench
