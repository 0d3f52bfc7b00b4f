// `order-system query ...`: the read side. Each query opens the read model's current file
// (a rebuild may have switched it) read-only and prints one row, as text or JSON.
#include "cli.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <jetsource/sqlite.hpp>

#include <initializer_list>
#include <utility>
#include <variant>

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

// Reads columns of a row into `j`, starting at column `first`: a text column as a string, an
// integer column only when SQLite holds an integer there. A REAL (a sum that left 64 bits in a
// file written before the tables were STRICT) or anything else is an error, never a clamped
// number.
enum class kind { text, integer };
jetsource::result<void> read_columns(nlohmann::ordered_json& j, const jetsource::sqlite::row& r,
                                     std::size_t first,
                                     std::initializer_list<std::pair<const char*, kind>> columns) {
  std::size_t i = first;
  for (const auto& [name, k] : columns) {
    const auto& v = r[i];
    if (k == kind::text) {
      j[name] = r.get<std::string>(i);
    } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
      j[name] = *n;
    } else {
      return jetsource::make_error(
          jetsource::errc::decode_failed,
          "{} is not an integer in the read model ({}): the file is damaged or was written by an "
          "older version; rebuild it (`order-system projections rebuild`)",
          name,
          std::holds_alternative<double>(v) ? fmt::format("the real {}", std::get<double>(v))
                                            : std::string("not a number"));
    }
    ++i;
  }
  return jetsource::success();
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
  for (const auto& l : *lines) {
    nlohmann::ordered_json item;
    auto ok = read_columns(
        item, l, 0,
        {{"sku", kind::text}, {"qty", kind::integer}, {"unit_price_cents", kind::integer}});
    if (!ok) return fail("query order " + q.key, ok.error());
    items.push_back(std::move(item));
  }
  nlohmann::ordered_json j;
  auto ok = read_columns(
      j, r, 0, {{"order_id", kind::text}, {"customer_id", kind::text}, {"status", kind::text}});
  if (!ok) return fail("query order " + q.key, ok.error());
  j["items"] = std::move(items);
  auto sums = read_columns(
      j, r, 3,
      {{"item_count", kind::integer}, {"total_cents", kind::integer}, {"version", kind::integer}});
  if (!sums) return fail("query order " + q.key, sums.error());
  return print(j, q.json);
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
  nlohmann::ordered_json j;
  auto ok = read_columns(j, r, 0,
                         {{"customer_id", kind::text},
                          {"orders_created", kind::integer},
                          {"orders_placed", kind::integer},
                          {"orders_paid", kind::integer},
                          {"orders_shipped", kind::integer},
                          {"orders_cancelled", kind::integer},
                          {"lifetime_value_cents", kind::integer}});
  if (!ok) return fail("query customer " + q.key, ok.error());
  return print(j, q.json);
}

int query_product(context& ctx, const query_options& q) {
  auto db = open(ctx, product_sales());
  if (!db) return fail("query product " + q.key, db.error());
  auto row =
      db->query_one("SELECT sku, units_sold, revenue_cents FROM products WHERE sku = ?1", q.key);
  if (!row) return fail("query product " + q.key, row.error());
  if (!*row) return not_found(fmt::format("no product {} (nothing of it was paid yet)", q.key));
  const auto& r = **row;
  nlohmann::ordered_json j;
  auto ok = read_columns(
      j, r, 0,
      {{"sku", kind::text}, {"units_sold", kind::integer}, {"revenue_cents", kind::integer}});
  if (!ok) return fail("query product " + q.key, ok.error());
  return print(j, q.json);
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
