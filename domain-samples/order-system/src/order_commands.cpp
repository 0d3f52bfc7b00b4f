// `order-system order ...`: the write side. Each subcommand is one command on one Order,
// run through repository::execute (load, decide, append; conflicts with other writers are
// retried inside). --command-id makes a retry land once; --json prints where the command landed.
#include "cli.hpp"
#include "order_service.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace order_system::cli {

// "ord-" and 16 random hex digits.
std::string new_order_id() {
  std::random_device rd;
  std::uint64_t bits = (std::uint64_t{rd()} << 32) | rd();
  return fmt::format("ord-{:016x}", bits);
}

// "ord-" and 16 hex digits of the command id's FNV-1a hash.
std::string order_id_for(std::string_view command_id) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : command_id) h = (h ^ c) * 1099511628211ull;
  return fmt::format("ord-{:016x}", h);
}

jetsource::result<std::optional<jetsource::executed>> landed(context& ctx, const std::string& id,
                                                             const std::string& command_id) {
  JETSOURCE_TRY(store, ctx.store());
  JETSOURCE_TRY(log, store->read(order::type_name, id));
  for (const auto& c : log.commits)
    if (c.commit_id == command_id)
      return jetsource::executed{c.version, c.sequence, c.event_count(),
                                 jetsource::append_status::already_appended, 1};
  return std::optional<jetsource::executed>{};
}

namespace {

struct order_options {
  std::string order_id;
  std::string customer_id;
  std::optional<std::string> customer_name;   // personal data: stored encrypted
  std::optional<std::string> customer_email;  // personal data: stored encrypted
  std::vector<std::string> items;             // SKU:QTY:UNIT_PRICE_CENTS
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t unit_price_cents = 0;
  std::int64_t amount_cents = 0;
  std::string reason;
  std::string command_id;  // "" = a new one per run
  bool json = false;
};

// A whole number (64 bits); the error says whether it is not one or is out of range.
jetsource::result<std::int64_t> to_int(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range && end == s.data() + s.size())
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "'{}' is out of range (a 64-bit whole number, at most {})", s,
                                 std::numeric_limits<std::int64_t>::max());
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty())
    return jetsource::make_error(jetsource::errc::invalid_argument, "'{}' is not a whole number",
                                 s);
  return v;
}

// SKU:QTY:UNIT_PRICE_CENTS, e.g. "widget:2:1999".
jetsource::result<order_line> parse_item(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "--item {}: {} (expected SKU:QTY:UNIT_PRICE_CENTS, e.g. "
                                 "widget:2:1999)",
                                 text, why);
  };
  std::vector<std::string_view> fields;
  for (std::size_t from = 0;;) {
    auto colon = text.find(':', from);
    fields.push_back(text.substr(from, colon - from));
    if (colon == std::string_view::npos) break;
    from = colon + 1;
  }
  if (fields.size() != 3) return bad(fmt::format("{} fields, not 3", fields.size()));
  JETSOURCE_TRY(jetsource::validate_token("SKU", fields[0]));
  auto qty = to_int(fields[1]);
  if (!qty) return bad("the quantity " + qty.error().message);
  auto price = to_int(fields[2]);
  if (!price) return bad("the unit price in cents " + price.error().message);
  return order_line{std::string(fields[0]), *qty, *price};
}

// A CLI11 check that free text (a reason) is valid UTF-8: refused before any I/O.
CLI::Validator utf8_text(std::string what) {
  return CLI::Validator(
      [what](std::string& value) -> std::string {
        auto ok = jetsource::validate_utf8(what, value);
        return ok ? std::string{} : ok.error().message;
      },
      "TEXT");
}

// What a command prints on success: with --json {"order_id","version","sequence"}; otherwise the
// order id when `print_id` (create), else nothing.
int report(const order_options& o, const std::string& id, const jetsource::executed& r,
           bool print_id) {
  if (o.json)
    fmt::print(
        "{}\n",
        nlohmann::ordered_json{{"order_id", id}, {"version", r.version}, {"sequence", r.sequence}}
            .dump());
  else if (print_id)
    fmt::print("{}\n", id);
  return exit_ok;
}

// Runs one command on an order. A malformed command is refused before any I/O.
template <class Command>
int execute(context& ctx, const order_options& o, const Command& command, bool print_id = false) {
  const std::string& id = o.order_id;
  if constexpr (requires { command.malformed(); }) {
    if (auto e = command.malformed()) {
      fmt::print(stderr, "order-system: order {}: {}\n", id, describe(*e));
      return exit_usage;
    }
  }
  auto r = run_command(ctx, id, command, o.command_id);
  if (!r) return fail("order " + id, r.error());
  return report(o, id, *r, print_id);
}

// Creates an order with a generated id (derived from --command-id when given), which an error
// names only when the order may exist (the outcome is unknown); otherwise it says that nothing
// was stored.
int create_generated(context& ctx, const order_options& o, const create_order& command) {
  if (auto e = command.malformed()) {
    fmt::print(stderr, "order-system: order create: {}\n", describe(*e));
    return exit_usage;
  }
  auto orders = ctx.orders();
  if (!orders) return fail("order create: not stored", orders.error());
  std::string id = o.command_id.empty() ? new_order_id() : order_id_for(o.command_id);
  auto r = run_command(ctx, id, command, o.command_id);
  if (r) return report(o, id, *r, true);
  if (r.error().is(jetsource::errc::timeout))
    return fail(fmt::format("order create: outcome unknown (order {} may have been stored{})", id,
                            o.command_id.empty() ? "" : "; retry with the same --command-id"),
                r.error());
  return fail("order create: not stored", r.error());
}

int create(context& ctx, const order_options& o) {
  create_order command{o.customer_id, {}, o.customer_name, o.customer_email};
  for (const auto& text : o.items) {
    auto item = parse_item(text);
    if (!item) return fail("order create", item.error());
    command.items.push_back(std::move(item).value());
  }
  if (o.order_id.empty()) return create_generated(ctx, o, command);
  return execute(ctx, o, command, true);
}

}  // namespace

CLI::Option* add_number(CLI::App* sub, const char* name, std::int64_t& target, const char* help) {
  return sub
      ->add_option_function<std::string>(
          name,
          [name, &target](const std::string& text) {
            auto v = to_int(text);
            if (!v) throw CLI::ValidationError(name, v.error().message);
            target = *v;
          },
          help)
      ->type_name("INT");
}

void add_order_commands(CLI::App& app, action& chosen) {
  auto* group = app.add_subcommand("order", "commands on orders (the write side)");
  group->require_subcommand(1);
  group->footer(
      exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_rejected, exit_not_found}));
  auto o = std::make_shared<order_options>();
  const auto window = orders_stream().duplicate_window;
  const std::string command_id_help = fmt::format(
      "an id for this command (e.g. a UUID): a retry with the same id lands once and prints the "
      "same result. The stream's duplicate window ({} s) bounds it: a retry later than that may "
      "land again. One id names one command",
      window.count());

  // Adds a subcommand that runs `run(ctx, options)` when chosen, with the options every order
  // command has.
  auto command = [&](const char* name, const char* help, auto run) {
    auto* sub = group->add_subcommand(name, help);
    sub->callback([&chosen, o, run] { chosen = [o, run](context& ctx) { return run(ctx, *o); }; });
    sub->add_option("--command-id", o->command_id, command_id_help)
        ->check(subject_token("command id"));
    sub->add_flag("--json", o->json,
                  "print {\"order_id\",\"version\",\"sequence\"} (sequence: the commit's stream "
                  "sequence, for read-your-writes)");
    sub->footer(
        exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_rejected, exit_not_found}));
    return sub;
  };
  // Most commands name an existing order first.
  auto on_order = [&](const char* name, const char* help, auto make_command) {
    auto* sub = command(name, help, [make_command](context& ctx, const order_options& opts) {
      return execute(ctx, opts, make_command(opts));
    });
    sub->add_option("ORDER", o->order_id, "the order id")
        ->required()
        ->check(subject_token("order id"));
    return sub;
  };

  auto* create_cmd = command("create", "create an order; prints its id", create);
  create_cmd->add_option("--customer", o->customer_id, "the customer id")
      ->required()
      ->check(subject_token("customer id"));
  create_cmd
      ->add_option("--customer-name", o->customer_name,
                   "the customer's name (personal data: stored encrypted with the customer's key)")
      ->check(utf8_text("--customer-name"));
  create_cmd
      ->add_option(
          "--customer-email", o->customer_email,
          "the customer's e-mail (personal data: stored encrypted with the customer's key)")
      ->check(utf8_text("--customer-email"));
  create_cmd->add_option("--order-id", o->order_id, "the new order's id (default: generated)")
      ->check(subject_token("order id"));
  create_cmd
      ->add_option("--item", o->items, "an initial item, SKU:QTY:UNIT_PRICE_CENTS (repeatable)")
      ->type_name("SKU:QTY:UNIT_PRICE_CENTS");

  auto* add = on_order("add-item", "add an item to a draft order", [](const order_options& x) {
    return add_item{x.sku, x.qty, x.unit_price_cents};
  });
  add->add_option("--sku", o->sku, "the SKU")->required()->check(subject_token("SKU"));
  add_number(add, "--qty", o->qty, "how many (>= 1)")->required();
  add_number(add, "--unit-price-cents", o->unit_price_cents, "the price of one, in cents (>= 0)")
      ->required();

  auto* remove = on_order("remove-item", "remove a SKU's whole line from a draft order",
                          [](const order_options& x) { return remove_item{x.sku}; });
  remove->add_option("--sku", o->sku, "the SKU")->required()->check(subject_token("SKU"));

  on_order("place", "place a draft order", [](const order_options&) { return place_order{}; });

  auto* pay = on_order("pay", "pay a placed order (the exact total)",
                       [](const order_options& x) { return pay_order{x.amount_cents}; });
  add_number(pay, "--amount-cents", o->amount_cents, "the amount, in cents")->required();

  on_order("ship", "ship a paid order", [](const order_options&) { return ship_order{}; });

  auto* cancel = on_order("cancel", "cancel a draft or placed order",
                          [](const order_options& x) { return cancel_order{x.reason}; });
  cancel->add_option("--reason", o->reason, "why")->check(utf8_text("--reason"));
}

}  // namespace order_system::cli
