// `order-system react` and `order-system reactors ...` (issue 12): running the sample's reactors
// (inventory, and notifications when a webhook is given) as one member of their groups, and
// operating them (status, dead letters, retry, skip) from any process.
#include "cli.hpp"

#include <order_system/reactors.hpp>

#include <jetsource/reactor.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace order_system::cli {

namespace {

constexpr std::array<std::string_view, 2> reactor_names{inventory_reactor_name,
                                                        notifications_reactor_name};

struct react_options {
  std::string instance;
  std::string webhook;
  int lease_ms = 6000;
  int webhook_timeout_ms = 5000;
  std::string name, aggregate_id;  // reactors dead-letters|retry|skip
  bool json = false;
  int timeout_s = 30;
};

bool known_reactor(std::string_view name) {
  if (name == reactor_names[0] || name == reactor_names[1]) return true;
  fmt::print(stderr, "order-system: no reactor '{}' ({}, {})\n", name, reactor_names[0],
             reactor_names[1]);
  return false;
}

jetsource::result<jetsource::connection*> connection(context& ctx) {
  JETSOURCE_TRY(rt, ctx.runtime());
  return &rt->conn;
}

// Stops every member at once (each hands its partitions over), like serve's stop_all.
int stop_all(std::vector<jetsource::reactor_member>& running) {
  std::vector<std::future<jetsource::result<void>>> stops;
  for (auto& m : running)
    stops.push_back(std::async(std::launch::async, [&m] { return m.stop(); }));
  int code = exit_ok;
  for (std::size_t i = 0; i < running.size(); ++i)
    if (auto r = stops[i].get(); !r) code = fail("stop " + running[i].instance(), r.error());
  return code;
}

int react(context& ctx, const react_options& o) {
  std::optional<webhook> hook;  // checked before any I/O
  if (!o.webhook.empty()) {
    auto h = webhook::make(
        {.url = o.webhook, .timeout = std::chrono::milliseconds(o.webhook_timeout_ms)});
    if (!h) return fail("react --webhook", h.error());
    hook.emplace(std::move(h).value());
  }
  jetsource::block_termination_signals();  // before any thread starts
  auto stocks = ctx.stocks();              // the stream exists before the groups
  if (!stocks) return fail("react", stocks.error());
  auto conn = connection(ctx);
  if (!conn) return fail("react", conn.error());
  jetsource::reactor_options ro;
  ro.stream = orders_stream().stream;
  ro.instance = o.instance;
  ro.lease = std::chrono::milliseconds(o.lease_ms);
  std::vector<jetsource::reactor> reactors{inventory_reactor(**stocks)};
  if (hook) reactors.push_back(notifications_reactor(*hook));
  std::vector<jetsource::reactor_member> running;
  for (auto& r : reactors) {
    auto m = jetsource::reactor_member::start(**conn, r, ro);
    if (!m) {
      stop_all(running);
      return fail("react " + r.name(), m.error());
    }
    running.push_back(std::move(m).value());
  }
  fmt::print(stderr, "order-system: reacting as {} ({}{}) on {}; Ctrl-C stops\n",
             running.front().instance(), inventory_reactor_name,
             hook ? fmt::format(", {} -> {}", notifications_reactor_name, hook->url()) : "",
             (*conn)->connected_url());
  int code = exit_ok;
  auto& embedded = (*ctx.runtime())->server;
  while (!termination_requested(std::chrono::milliseconds(250))) {
    if (embedded && !embedded->running()) {
      fmt::print(stderr, "order-system: react: the embedded nats-server exited unexpectedly\n");
      code = exit_failure;
      break;
    }
  }
  fmt::print(stderr, "order-system: stopping (handing the partitions over)\n");
  int stopped = stop_all(running);
  return code != exit_ok ? code : stopped;
}

nlohmann::ordered_json parked_json(std::string_view reactor, const jetsource::parked_aggregate& p) {
  return {{"reactor", reactor},
          {"aggregate_type", p.aggregate_type},
          {"aggregate_id", p.aggregate_id},
          {"partition", p.partition},
          {"sequence", p.sequence},
          {"version", p.version},
          {"event_type", p.event_type},
          {"error", p.error},
          {"attempts", p.attempts},
          {"first_failed_at", p.first_failed_at},
          {"last_failed_at", p.last_failed_at},
          {"request", p.request}};
}

nlohmann::ordered_json status_json(std::string_view name,
                                   const std::optional<jetsource::reactor_status>& s) {
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  nlohmann::ordered_json parked = nlohmann::ordered_json::array();
  if (s) {
    for (const auto& m : s->members)
      members.push_back({{"instance", m.instance},
                         {"host", m.host},
                         {"pid", m.pid},
                         {"partitions", m.partitions.size()},
                         {"position", m.position},
                         {"pending", m.pending}});
    for (const auto& p : s->parked) parked.push_back(parked_json(name, p));
  }
  return {{"reactor", name},
          {"state", s ? "started" : "never started"},
          {"mode", s ? s->mode : ""},
          {"position", s ? s->position : 0},
          {"pending", s ? s->pending : 0},
          {"members", members},
          {"parked", parked},
          {"dead_letters", s ? s->dead_letters : 0}};
}

int status(context& ctx, const react_options& o) {
  auto conn = connection(ctx);
  if (!conn) return fail("reactors status", conn.error());
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (auto name : reactor_names) {
    auto s = jetsource::read_reactor_status(**conn, orders_stream().stream, name);
    if (!s && !s.error().is(jetsource::errc::not_found))
      return fail(fmt::format("status of {}", name), s.error());
    all.push_back(status_json(name, s ? std::optional(std::move(s).value()) : std::nullopt));
  }
  if (o.json) {
    fmt::print("{}\n", all.dump());
    return exit_ok;
  }
  fmt::print("{:<14} {:<8} {:>12} {:>9} {:>8} {:>7} {:>6}\n", "reactor", "mode", "position",
             "pending", "members", "parked", "dead");
  for (const auto& j : all)
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
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (auto name : reactor_names) {
    if (!o.name.empty() && name != o.name) continue;
    auto s = jetsource::read_reactor_status(**conn, orders_stream().stream, name);
    if (!s && s.error().is(jetsource::errc::not_found)) continue;  // never ran: none
    if (!s) return fail(fmt::format("dead letters of {}", name), s.error());
    for (const auto& p : s->parked) {
      all.push_back(parked_json(name, p));
      if (!o.json)
        fmt::print("{} {}/{} v{} seq {} {} attempts {}{}: {}\n", name, p.aggregate_type,
                   p.aggregate_id, p.version, p.sequence, p.event_type, p.attempts,
                   p.request.empty() ? "" : " (" + p.request + " pending)", p.error);
    }
  }
  if (o.json)
    fmt::print("{}\n", all.dump());
  else if (all.empty())
    fmt::print("no dead letters\n");
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
  rc->add_option("--instance", o->instance,
                 "this member's name in its groups (default: a random one); give each member a "
                 "stable one")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            bool ok = !v.empty();
            for (char c : v)
              ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
            return ok ? "" : "an instance name is letters, digits, '_' and '-'";
          },
          "NAME"));
  rc->add_option("--webhook", o->webhook,
                 "POST OrderPlaced/OrderShipped notifications to this URL (default: the "
                 "notification reactor does not run)");
  rc->add_option("--lease-ms", o->lease_ms,
                 "a killed member's partitions are taken over after this (default 6000)")
      ->check(CLI::Range(300, 600000));
  rc->add_option("--webhook-timeout-ms", o->webhook_timeout_ms,
                 "how long the webhook may take to answer (default 5000)")
      ->check(CLI::Range(10, 600000));
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
