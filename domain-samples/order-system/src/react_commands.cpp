// `order-system react` and `order-system reactors ...` (issue 12): running the sample's reactors
// (inventory, and notifications when a webhook is given) as one member of their groups, and
// operating them (status, dead letters, retry, skip) from any process.
#include "cli.hpp"

#include "reactor_service.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace order_system::cli {

namespace {

struct react_options {
  reactor_run_options run;
  std::string name, aggregate_id;  // reactors dead-letters|retry|skip
  bool json = false;
  int timeout_s = 30;
};

bool known_reactor(std::string_view name) {
  if (is_reactor_name(name)) return true;
  fmt::print(stderr, "order-system: no reactor '{}' ({}, {})\n", name, reactor_names[0],
             reactor_names[1]);
  return false;
}

jetsource::result<jetsource::connection*> connection(context& ctx) {
  JETSOURCE_TRY(rt, ctx.runtime());
  return &rt->conn;
}

int react(context& ctx, const react_options& o) {
  auto hook = prepare_reactors(o.run);  // checked before any I/O
  if (!hook) return fail("react --webhook", hook.error());
  jetsource::block_termination_signals();  // before any thread starts
  auto running = running_reactors::start(ctx, o.run, std::move(*hook));
  if (!running) return fail("react", running.error());
  auto conn = connection(ctx);
  fmt::print(stderr, "order-system: reacting as {} ({}) on {}; Ctrl-C stops\n", running->instance(),
             running->describe(), conn ? (*conn)->connected_url() : std::string("?"));
  int code = exit_ok;
  auto& embedded = (*ctx.runtime())->server;
  while (!termination_requested(std::chrono::milliseconds(250))) {
    if (embedded && !embedded->running()) {
      fmt::print(stderr, "order-system: react: the embedded nats-server exited unexpectedly\n");
      code = exit_failure;
      break;
    }
    // A member whose user lacks a permission reads nothing more: no point running on.
    if (running->report_failures() != exit_ok) {
      code = exit_failure;
      break;
    }
  }
  fmt::print(stderr, "order-system: stopping (handing the partitions over)\n");
  int stopped = running->stop();
  return code != exit_ok ? code : stopped;
}

int status(context& ctx, const react_options& o) {
  auto conn = connection(ctx);
  if (!conn) return fail("reactors status", conn.error());
  auto all = reactor_statuses_view(**conn);
  if (!all) return fail("reactors status", all.error());
  if (o.json) {
    fmt::print("{}\n", all->dump());
    return exit_ok;
  }
  fmt::print("{:<14} {:<8} {:>12} {:>9} {:>8} {:>7} {:>6}\n", "reactor", "mode", "position",
             "pending", "members", "parked", "dead");
  for (const auto& j : *all)
    fmt::print("{:<14} {:<8} {:>12} {:>9} {:>8} {:>7} {:>6}\n", j["reactor"].get<std::string>(),
               j["state"] == "started" ? j["mode"].get<std::string>() : "-",
               j["position"].get<std::uint64_t>(), j["pending"].get<std::uint64_t>(),
               j["members"].size(), j["parked"].size(), j["dead_letters"].get<std::uint64_t>());
  return exit_ok;
}

int dead_letters(context& ctx, const react_options& o) {
  if (!o.name.empty() && !known_reactor(o.name)) return exit_usage;
  auto conn = connection(ctx);
  if (!conn) return fail("reactors dead-letters", conn.error());
  auto all = reactor_dead_letters_view(**conn, o.name);
  if (!all) return fail("reactors dead-letters", all.error());
  if (o.json) {
    fmt::print("{}\n", all->dump());
    return exit_ok;
  }
  for (const auto& p : *all) {
    auto request = p["request"].get<std::string>();
    fmt::print("{} {}/{} v{} seq {} {} attempts {}{}: {}\n", p["reactor"].get<std::string>(),
               p["aggregate_type"].get<std::string>(), p["aggregate_id"].get<std::string>(),
               p["version"].get<std::uint64_t>(), p["sequence"].get<std::uint64_t>(),
               p["event_type"].get<std::string>(), p["attempts"].get<int>(),
               request.empty() ? "" : " (" + request + " pending)", p["error"].get<std::string>());
  }
  if (all->empty()) fmt::print("no dead letters\n");
  return exit_ok;
}

int repair(context& ctx, const react_options& o, bool skip) {
  if (!known_reactor(o.name)) return exit_usage;
  auto conn = connection(ctx);
  const char* verb = skip ? "skip" : "retry";
  if (!conn) return fail(fmt::format("reactors {}", verb), conn.error());
  const auto wait = std::chrono::seconds(o.timeout_s);
  const auto stream = orders_stream().stream;
  auto done = skip ? jetsource::request_reactor_skip(**conn, stream, o.name, order::type_name,
                                                     o.aggregate_id, wait)
                   : jetsource::request_reactor_retry(**conn, stream, o.name, order::type_name,
                                                      o.aggregate_id, wait);
  if (!done && done.error().is(jetsource::errc::timeout))
    return fail(fmt::format("{} {} {}: asked, but no running member carried it out within {} s "
                            "(the request stays; `react` will do it)",
                            verb, o.name, o.aggregate_id, o.timeout_s),
                done.error());
  if (!done) return fail(fmt::format("{} {} {}", verb, o.name, o.aggregate_id), done.error());
  fmt::print("{} Order {} in {}\n", skip ? "skipped" : "retried", o.aggregate_id, o.name);
  return exit_ok;
}

}  // namespace

void add_react_commands(CLI::App& app, action& chosen) {
  auto o = std::make_shared<react_options>();
  auto bind = [&chosen, o](CLI::App* sub, int (*run)(context&, const react_options&)) {
    sub->callback([&chosen, o, run] { chosen = [o, run](context& ctx) { return run(ctx, *o); }; });
  };
  auto* rc = app.add_subcommand(
      "react",
      "run the inventory reactor (and notifications with --webhook) as one member of their "
      "groups, until SIGINT/SIGTERM");
  add_reactor_run_options(rc, o->run);
  bind(rc, react);

  auto* group = app.add_subcommand(
      "reactors", "the reactors (inventory, notifications): status, dead letters, retry, skip");
  group->require_subcommand(1);
  auto* st = group->add_subcommand(
      "status", "per reactor: position, pending, members, parked aggregates, dead letters");
  st->add_flag("--json", o->json, "print JSON");
  bind(st, status);
  auto* dl = group->add_subcommand("dead-letters", "the orders a reactor parked");
  dl->add_option("NAME", o->name, "inventory | notifications (default: both)");
  dl->add_flag("--json", o->json, "print JSON");
  bind(dl, dead_letters);
  auto add_repair = [&](const char* name, const char* what, bool skip) {
    auto* sub = group->add_subcommand(name, what);
    sub->add_option("NAME", o->name, "inventory | notifications")->required();
    sub->add_option("AGGREGATE_ID", o->aggregate_id, "the parked order")
        ->required()
        ->check(subject_token("order id"));
    sub->add_option("--timeout", o->timeout_s,
                    "seconds to wait for the running member to carry it out (default 30)")
        ->check(CLI::Range(1, 3600));
    sub->footer("Carried out by the running `react` member that owns the order.\n" +
                exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_not_found}) +
                "\n(4: the order is not parked in that reactor)");
    if (skip)
      sub->callback([&chosen, o] { chosen = [o](context& ctx) { return repair(ctx, *o, true); }; });
    else
      sub->callback(
          [&chosen, o] { chosen = [o](context& ctx) { return repair(ctx, *o, false); }; });
  };
  add_repair("retry", "handle a parked order's events again from the failing one", false);
  add_repair("skip", "count a parked order's failing event as handled and go on", true);
}

}  // namespace order_system::cli
