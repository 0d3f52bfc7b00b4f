// `order-system query ...`: the read side. Each query opens the read model's current file
// (a rebuild may have switched it) read-only and prints one row (views.hpp), as text or JSON.
#include "cli.hpp"
#include "views.hpp"

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

// Prints a view (JSON or key: value lines), or says it was not found (exit 4).
int show(std::string_view what, const std::string& key,
         const jetsource::result<std::optional<nlohmann::ordered_json>>& view,
         const std::string& missing, bool json) {
  if (!view) return fail(fmt::format("query {} {}", what, key), view.error());
  if (!*view) return not_found(missing);
  return print(**view, json);
}

int query_order(context& ctx, const query_options& q) {
  return show("order", q.key, order_view(ctx.options(), q.key), fmt::format("no order {}", q.key),
              q.json);
}

int query_customer(context& ctx, const query_options& q) {
  return show("customer", q.key, customer_view(ctx.options(), q.key),
              fmt::format("no customer {}", q.key), q.json);
}

int query_product(context& ctx, const query_options& q) {
  return show("product", q.key, product_view(ctx.options(), q.key),
              fmt::format("no product {} (nothing of it was paid yet)", q.key), q.json);
}

// A SKU's stock, loaded from the event store (always current; no read model): zeros for a SKU
// that has none.
int query_stock(context& ctx, const query_options& q) {
  auto stocks = ctx.stocks();
  if (!stocks) return fail("query stock " + q.key, stocks.error());
  auto s = (*stocks)->load(q.key);
  if (!s) return fail("query stock " + q.key, s.error());
  return print(nlohmann::ordered_json{{"sku", q.key},
                                      {"received", s->state.received()},
                                      {"sold", s->state.sold()},
                                      {"on_hand", s->state.on_hand()}},
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

  auto* stock = group->add_subcommand(
      "stock", "a SKU's stock: units received, sold (by the inventory reactor), on hand");
  stock->add_option("SKU", q->key, "the SKU")->required()->check(subject_token("SKU"));
  stock->add_flag("--json", q->json, "print {\"sku\",\"received\",\"sold\",\"on_hand\"}");
  stock->footer(exit_codes_footer({exit_ok, exit_failure, exit_usage}));
  stock->callback([&chosen, q] { chosen = [q](context& ctx) { return query_stock(ctx, *q); }; });
}

}  // namespace order_system::cli
