// `order-system query ...`: the read side. Each query opens the read model's current file
// (a rebuild may have switched it) read-only and prints one row, as text or JSON.
#include "cli.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace order_system::cli {

jetsource::projector_options read_model_options(const globals& g, const jetsource::projection& p) {
  jetsource::projector_options o;
  o.stream = orders_stream().stream;
  o.database = g.data_dir / (p.name() + ".db");
  return o;
}

std::optional<jetsource::projection> read_model(std::string_view name) {
  for (auto& p : read_models())
    if (p.name() == name) return p;
  return std::nullopt;
}

namespace {

struct query_options {
  std::string key;
  bool json = false;
};

// Opens a read model for one query; a missing file means nothing was projected yet.
jetsource::result<jetsource::sqlite::database> open(const context& ctx,
                                                    const jetsource::projection& p) {
  auto db = jetsource::open_read_model(read_model_options(ctx.options(), p).database);
  if (!db && db.error().is(jetsource::errc::not_found))
    return jetsource::make_error(jetsource::errc::not_found,
                                 "no {} read model in {} yet (run `order-system serve`)", p.name(),
                                 ctx.options().data_dir.string());
  return db;
}

int not_found(std::string_view what) {
  fmt::print(stderr, "order-system: {}\n", what);
  return exit_not_found;
}

int print(const nlohmann::ordered_json& j, bool json) {
  if (json) {
    fmt::print("{}\n", j.dump());
    return exit_ok;
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_array()) {
      fmt::print("{}:\n", k);
      for (const auto& item : v) {
        std::string line;
        for (const auto& [ik, iv] : item.items()) line += fmt::format(" {}={}", ik, iv.dump());
        fmt::print("  -{}\n", line);
      }
    } else {
      fmt::print("{}: {}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  return exit_ok;
}

int query_order(context& ctx, const query_options& q) {
  auto db = open(ctx, order_summary());
  if (!db) return fail("query order " + q.key, db.error());
  auto row = db->query_one(
      "SELECT order_id, customer_id, status, item_count, total_cents, version FROM orders "
      "WHERE order_id = ?1",
      q.key);
  if (!row) return fail("query order " + q.key, row.error());
  if (!*row) return not_found(fmt::format("no order {}", q.key));
  const auto& r = **row;
  auto lines = db->query(
      "SELECT sku, qty, unit_price_cents FROM order_lines WHERE order_id = ?1 ORDER BY sku", q.key);
  if (!lines) return fail("query order " + q.key, lines.error());
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  for (const auto& l : *lines)
    items.push_back({{"sku", l.get<std::string>(0)},
                     {"qty", l.get<std::int64_t>(1)},
                     {"unit_price_cents", l.get<std::int64_t>(2)}});
  return print({{"order_id", r.get<std::string>(0)},
                {"customer_id", r.get<std::string>(1)},
                {"status", r.get<std::string>(2)},
                {"items", items},
                {"item_count", r.get<std::int64_t>(3)},
                {"total_cents", r.get<std::int64_t>(4)},
                {"version", r.get<std::int64_t>(5)}},
               q.json);
}

int query_customer(context& ctx, const query_options& q) {
  auto db = open(ctx, customer_stats());
  if (!db) return fail("query customer " + q.key, db.error());
  auto row = db->query_one(
      "SELECT customer_id, orders_created, orders_placed, orders_paid, orders_shipped, "
      "orders_cancelled, lifetime_value_cents FROM customers WHERE customer_id = ?1",
      q.key);
  if (!row) return fail("query customer " + q.key, row.error());
  if (!*row) return not_found(fmt::format("no customer {}", q.key));
  const auto& r = **row;
  return print({{"customer_id", r.get<std::string>(0)},
                {"orders_created", r.get<std::int64_t>(1)},
                {"orders_placed", r.get<std::int64_t>(2)},
                {"orders_paid", r.get<std::int64_t>(3)},
                {"orders_shipped", r.get<std::int64_t>(4)},
                {"orders_cancelled", r.get<std::int64_t>(5)},
                {"lifetime_value_cents", r.get<std::int64_t>(6)}},
               q.json);
}

int query_product(context& ctx, const query_options& q) {
  auto db = open(ctx, product_sales());
  if (!db) return fail("query product " + q.key, db.error());
  auto row =
      db->query_one("SELECT sku, units_sold, revenue_cents FROM products WHERE sku = ?1", q.key);
  if (!row) return fail("query product " + q.key, row.error());
  if (!*row) return not_found(fmt::format("no product {} (nothing of it was paid yet)", q.key));
  const auto& r = **row;
  return print({{"sku", r.get<std::string>(0)},
                {"units_sold", r.get<std::int64_t>(1)},
                {"revenue_cents", r.get<std::int64_t>(2)}},
               q.json);
}

}  // namespace

void add_query_commands(CLI::App& app, action& chosen) {
  auto* group = app.add_subcommand(
      "query", "read the read models (what `serve` has applied; see docs/getting-started.md)");
  group->require_subcommand(1);
  auto q = std::make_shared<query_options>();
  auto add = [&](const char* name, const char* what, const char* key,
                 int (*run)(context&, const query_options&)) {
    auto* sub = group->add_subcommand(name, what);
    sub->add_option(key, q->key, std::string("the ") + name + " id")
        ->required()
        ->check(subject_token(std::string(name) + " id"));
    sub->add_flag("--json", q->json, "print JSON");
    sub->callback([&chosen, q, run] { chosen = [q, run](context& ctx) { return run(ctx, *q); }; });
  };
  add("order", "an order: customer, status, lines, totals", "ORDER", query_order);
  add("customer", "a customer's order counts and lifetime value", "CUSTOMER", query_customer);
  add("product", "a SKU's units sold and revenue", "SKU", query_product);
}

}  // namespace order_system::cli
