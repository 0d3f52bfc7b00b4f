// `order-system stock receive SKU --qty N`: adds units to a SKU's Stock aggregate (the
// inventory; issue 12). Sales are recorded by the inventory reactor (`react`), not here.
// `query stock SKU` is in query_commands.cpp.
#include "cli.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace order_system::cli {

namespace {

struct stock_options {
  std::string sku;
  std::int64_t qty = 0;
  std::string command_id;  // "" = a new one per run
  bool json = false;
};

int receive(context& ctx, const stock_options& o) {
  receive_stock command{o.qty};
  if (auto e = command.malformed()) {
    fmt::print(stderr, "order-system: stock {}: {}\n", o.sku, describe(*e));
    return exit_usage;
  }
  auto stocks = ctx.stocks();
  if (!stocks) return fail("stock " + o.sku, stocks.error());
  auto r = (*stocks)->execute(o.sku, command, {.command_id = o.command_id});
  if (!r) return fail("stock " + o.sku, r.error());
  if (o.json)
    fmt::print(
        "{}\n",
        nlohmann::ordered_json{{"sku", o.sku}, {"version", r->version}, {"sequence", r->sequence}}
            .dump());
  return exit_ok;
}

}  // namespace

void add_stock_commands(CLI::App& app, action& chosen) {
  auto* group = app.add_subcommand("stock", "the inventory: stock per SKU (the write side)");
  group->require_subcommand(1);
  auto o = std::make_shared<stock_options>();
  auto* sub = group->add_subcommand("receive", "add units to a SKU's stock");
  sub->add_option("SKU", o->sku, "the SKU")->required()->check(subject_token("SKU"));
  add_number(sub, "--qty", o->qty, "how many units arrived (>= 1)")->required();
  sub->add_option("--command-id", o->command_id,
                  "an id for this command: a retry with the same id within the stream's "
                  "duplicate window lands once")
      ->check(subject_token("command id"));
  sub->add_flag("--json", o->json, "print {\"sku\",\"version\",\"sequence\"}");
  sub->callback([&chosen, o] { chosen = [o](context& ctx) { return receive(ctx, *o); }; });
}

}  // namespace order_system::cli
