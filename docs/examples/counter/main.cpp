// The counter program: increments counter c-1, then reads its value from the read model.
#include "counter.hpp"

#include <jetsource/projector.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>

static int fail(const jetsource::error& e) {
  fmt::print(stderr, "{}\n", e);
  return 1;
}

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : ".counter";
  // No URL: the embedded nats-server storing its data in <dir>/nats (started by the first
  // process that opens it, shared by the others, stopped by the last one out).
  auto rt = jetsource::runtime::open({}, dir / "nats");
  if (!rt) return fail(rt.error());
  auto store =
      jetsource::event_store::open(rt->conn, {.stream = "COUNTERS", .subject_prefix = "counters"});
  if (!store) return fail(store.error());
  auto totals = jetsource::projector::start(
      rt->conn, counter_totals(), {.stream = "COUNTERS", .database = dir / "counter_totals.db"});
  if (!totals) return fail(totals.error());

  // The write side: load, decide, append.
  jetsource::repository<counter> counters{*store};
  auto r = counters.execute("c-1", increment{5});
  if (!r && r.error().is(counter_error::too_big)) fmt::print("c-1 is full\n");
  if (!r) return fail(r.error());
  fmt::print("c-1 is at version {} (stream sequence {})\n", r->version, r->sequence);

  // The read side: wait until the read model has applied that commit, then query it.
  if (auto applied = totals->wait_for(r->sequence, std::chrono::seconds{10}); !applied)
    return fail(applied.error());
  auto db = jetsource::open_read_model(dir / "counter_totals.db");
  if (!db) return fail(db.error());
  auto row = db->query_one("SELECT value FROM counter_totals WHERE counter_id = ?1", "c-1");
  if (!row) return fail(row.error());
  fmt::print("c-1 reads {} in counter_totals\n", *row ? (**row).get<std::int64_t>(0) : 0);
  if (auto stopped = totals->stop(); !stopped) return fail(stopped.error());
}
