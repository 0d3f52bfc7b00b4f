// `order-system customer forget C`: crypto-shredding. Destroys C's key (every personal field of
// C, in every commit, becomes unreadable), records CustomerForgotten (the read models null C's
// name and e-mail), then, once `serve` has applied it, truncates customer_stats' WAL so no old
// page image with the data is left in it (the tables are written with secure_delete on).
#include "cli.hpp"

#include <jetsource/sqlite.hpp>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace order_system::cli {

namespace {

struct customer_options {
  std::string customer_id;
  int wait_seconds = 10;
};

// Waits (up to `wait`) until customer_stats shows the customer forgotten; false on timeout or
// when there is no read model here (serve never ran).
bool read_model_forgot(const globals& g, const std::string& customer, std::chrono::seconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  const auto path = read_model_options(g, customer_stats()).database;
  for (;;) {
    if (auto db = jetsource::open_read_model(path)) {
      auto row = db->query_one("SELECT forgotten FROM customers WHERE customer_id = ?1", customer);
      if (row && *row && (**row).get<std::int64_t>(0) == 1) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Copies the WAL into the database and truncates it to 0 bytes: its older frames held pages
// with the personal data.
jetsource::result<void> truncate_wal(const globals& g) {
  const auto path = jetsource::current_file(read_model_options(g, customer_stats()).database);
  JETSOURCE_TRY(db, jetsource::sqlite::database::open(path.string(), {.create = false}));
  JETSOURCE_TRY(row, db.query_one("PRAGMA wal_checkpoint(TRUNCATE)"));
  if (row && (*row).get<std::int64_t>(0) != 0)
    return jetsource::make_error(jetsource::errc::busy, "{}: the WAL is in use, not truncated",
                                 path.string());
  return jetsource::success();
}

int forget(context& ctx, const customer_options& o) {
  auto keys = ctx.keys();
  if (!keys) return fail("customer forget", keys.error());
  if (auto r = (*keys)->forget(o.customer_id); !r) return fail("customer forget", r.error());
  auto store = ctx.store();
  if (!store) return fail("customer forget: the key is destroyed, not recorded", store.error());
  jetsource::repository<customer> customers{**store};
  auto r = customers.execute(o.customer_id, forget_customer{o.customer_id});
  if (!r)
    return fail("customer forget: the key is destroyed; not recorded yet (run it again)",
                r.error());
  if (!read_model_forgot(ctx.options(), o.customer_id, std::chrono::seconds(o.wait_seconds))) {
    fmt::print(stderr,
               "order-system: customer forget: {}'s key is destroyed; `serve` has not applied it "
               "to customer_stats yet (run this again once it has, to truncate its WAL)\n",
               o.customer_id);
    return exit_ok;
  }
  if (auto t = truncate_wal(ctx.options()); !t)
    fmt::print(stderr, "order-system: customer forget: {}\n", t.error().message);
  return exit_ok;
}

}  // namespace

void add_customer_commands(CLI::App& app, action& chosen) {
  auto* group = app.add_subcommand("customer", "customers' personal data (crypto-shredding)");
  group->require_subcommand(1);
  auto o = std::make_shared<customer_options>();
  auto* sub = group->add_subcommand(
      "forget", "destroy a customer's key: its name and e-mail become unreadable everywhere");
  sub->add_option("CUSTOMER", o->customer_id, "the customer id")
      ->required()
      ->check(subject_token("customer id"));
  sub->add_option("--wait", o->wait_seconds,
                  "seconds to wait for `serve` to apply it before truncating the read model's "
                  "WAL (default 10; 0: do not wait)")
      ->check(CLI::Range(0, 3600));
  sub->callback([&chosen, o] { chosen = [o](context& ctx) { return forget(ctx, *o); }; });
}

}  // namespace order_system::cli
