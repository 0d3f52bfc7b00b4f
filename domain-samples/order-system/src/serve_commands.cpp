// `order-system serve` and `order-system projections ...`: running the read models, their
// status, rebuilds and dead letters.
#include "cli.hpp"
#include "http/order_api.hpp"
#include "reactor_service.hpp"
#include "views.hpp"

#include <jetsource/rebuild.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <csignal>
#include <ctime>
#include <future>
#include <vector>

namespace order_system::cli {

namespace {

struct serve_options {
  std::string name;
  bool json = false;
  std::string http;    // serve --http HOST:PORT ("" = no HTTP API)
  bool react = false;  // serve --react: also a member of the reactors' groups
  reactor_run_options reactors;
};

jetsource::connection* connection_of(context& ctx, int& code) {
  auto rt = ctx.runtime();
  if (!rt) {
    code = fail(ctx.connected() ? "open" : "connect", rt.error());
    return nullptr;
  }
  return &(*rt)->conn;
}

// Stops every read model at once: each one's stop is bounded by its drain timeout, so serve stops
// within one drain timeout in total, however many read models (a full disk, for instance, makes
// each of them wait that long). What was not committed is not acked: delivered again later.
int stop_all(std::vector<jetsource::projector>& running) {
  std::vector<std::future<jetsource::result<void>>> stops;
  for (auto& p : running)
    stops.push_back(std::async(std::launch::async, [&p] { return p.stop(); }));
  int code = exit_ok;
  for (std::size_t i = 0; i < running.size(); ++i)
    if (auto r = stops[i].get(); !r) code = fail("stop " + running[i].name(), r.error());
  return code;
}

// A read model that stopped by itself (a damaged file, a stream created again) is reported once;
// the others go on, and serve ends with exit 1.
void report_failures(const std::vector<jetsource::projector>& running, std::vector<bool>& reported,
                     int& code) {
  for (std::size_t i = 0; i < running.size(); ++i) {
    auto failure = running[i].failure();
    if (failure && !reported[i]) code = fail(running[i].name(), *failure);
    reported[i] = failure.has_value();
  }
}

int serve(context& ctx, const serve_options& o) {
  auto hook = prepare_reactors(o.reactors);  // checked before any I/O
  if (!hook) return fail("serve --webhook", hook.error());
  jetsource::block_termination_signals();  // before any thread starts
  auto store = ctx.store();                // the stream exists before the consumers
  if (!store) return fail("serve", store.error());
  int code = exit_ok;
  auto* conn = connection_of(ctx, code);
  if (!conn) return code;
  std::vector<jetsource::projector> running;
  for (const auto& p : read_models()) {
    auto started = jetsource::start_or_rebuild(*conn, p, read_model_options(ctx.options(), p));
    if (!started && started.error().is(jetsource::errc::corrupt)) {
      code = fail("serve " + p.name(), started.error());  // serve the others; exit 1 at the end
      continue;
    }
    if (!started) return fail("serve " + p.name(), started.error());
    running.push_back(std::move(started).value());
  }
  std::optional<running_reactors> reactors;  // serve --react (the same as `react`)
  if (o.react) {
    auto r = running_reactors::start(ctx, o.reactors, std::move(*hook));
    if (!r) {
      stop_all(running);
      return fail("serve --react", r.error());
    }
    reactors.emplace(std::move(r).value());
    fmt::print(stderr, "order-system: reacting as {} ({})\n", reactors->instance(),
               reactors->describe());
  }
  auto api = serve_http(ctx, o.http, running);  // after the read models: it waits on them
  if (!api) {
    if (reactors) reactors->stop();
    stop_all(running);
    return fail("serve --http", api.error());
  }
  std::vector<bool> reported(running.size(), false);
  fmt::print(stderr, "order-system: serving {} read models from {} into {}; Ctrl-C stops\n",
             running.size(), conn->connected_url(), ctx.options().data_dir.string());
  // The embedded server this process started (none when it uses a URL or another's server). If
  // it dies, serve stops with exit 1 rather than run on without a store: a supervisor (or the
  // operator) starts serve again, which starts the server again on the same store.
  auto& embedded = (*ctx.runtime())->server;
  const pid_t embedded_pid = embedded ? embedded->pid() : -1;
  while (!termination_requested(std::chrono::milliseconds(250))) {
    if (embedded && !embedded->running()) {
      fmt::print(stderr,
                 "order-system: serve: the embedded nats-server pid {} (store {}) exited "
                 "unexpectedly; stopping with exit code 1 (see {}; start serve again to restart "
                 "it)\n",
                 embedded_pid, embedded->options().data_dir.string(),
                 (embedded->options().data_dir / "nats-server.log").string());
      code = exit_failure;
      break;
    }
    for (auto& p : running) {
      auto switched = p.adopt_rebuild();
      if (!switched)
        fmt::print(stderr, "order-system: {}: {}\n", p.name(), switched.error());
      else if (*switched)
        fmt::print(stderr, "order-system: {}: switched to the rebuilt model\n", p.name());
    }
    report_failures(running, reported, code);
    // A failed reactor member, like a failed read model: reported; the rest go on; exit 1.
    if (reactors && reactors->report_failures() != exit_ok) code = exit_failure;
  }
  if (*api) (*api)->stop();  // stops accepting; the requests in flight are answered first
  int reactors_stopped = exit_ok;
  if (reactors) {
    fmt::print(stderr, "order-system: stopping the reactors (handing the partitions over)\n");
    reactors_stopped = reactors->stop();
  }
  fmt::print(stderr, "order-system: stopping (draining the read models)\n");
  int stopped = stop_all(running);
  if (stopped == exit_ok) stopped = reactors_stopped;
  report_failures(running, reported, code);  // one that failed while stopping
  return code != exit_ok ? code : stopped;
}

int status(context& ctx, const serve_options& o) {
  int code = exit_ok;
  auto* conn = connection_of(ctx, code);
  if (!conn) return code;
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  std::vector<jetsource::projection_status> list;
  for (const auto& p : read_models()) {
    auto s = jetsource::read_status(*conn, p, read_model_options(ctx.options(), p));
    if (!s) return fail("status of " + p.name(), s.error());
    all.push_back(status_view(*s));
    list.push_back(std::move(s).value());
  }
  if (o.json) {
    fmt::print("{}\n", all.dump());
    return exit_ok;
  }
  // New columns go at the end (scripts read the others by position).
  fmt::print("{:<16} {:>7} {:<10} {:>14} {:>9} {:>12} {:>9} {:>12} {:>9} {}\n", "projection",
             "version", "state", "applied_seq", "pending", "events", "dead", "rebuild", "lag_s",
             "applied_event_time");
  for (const auto& s : list)
    fmt::print("{:<16} {:>7} {:<10} {:>14} {:>9} {:>12} {:>9} {:>12} {:>9.1f} {}\n", s.name,
               s.version, s.state, s.last_applied_seq, s.pending, s.events_applied, s.dead_letters,
               s.rebuild.empty() ? "-" : fmt::format("{} @{}", s.rebuild, s.rebuild_applied_seq),
               s.lag_seconds, s.applied_event_time.empty() ? "-" : s.applied_event_time);
  for (const auto& s : list)
    if (!s.error.empty()) fmt::print("{}: {}\n", s.name, s.error);
  return exit_ok;
}

// A progress bar on a terminal, a log line a second otherwise.
void show(const jetsource::rebuild_progress& p) {
  static auto last = std::chrono::steady_clock::time_point{};
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const bool done = p.total > 0 && p.done >= p.total;
  auto now = std::chrono::steady_clock::now();
  if (!tty && !done && now - last < std::chrono::seconds(1)) return;
  last = now;
  double fraction = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
  if (tty) {
    constexpr int width = 30;
    int filled = static_cast<int>(fraction * width);
    fmt::print(stderr, "\r{} [{}{}] {:5.1f}% {}/{} commits {:.0f} commits/s ETA {:.0f}s   ",
               p.projection, std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(width - filled), '.'), fraction * 100, p.done,
               p.total, p.commits_per_s, p.eta_s);
    if (done) fmt::print(stderr, "\n");
  } else {
    fmt::print(stderr, "rebuild {}: {}/{} commits ({:.1f}%), {:.0f} commits/s, ETA {:.0f} s\n",
               p.projection, p.done, p.total, fraction * 100, p.commits_per_s, p.eta_s);
  }
}

// The read model called `name`, or nullopt after saying on stderr which names there are.
std::optional<jetsource::projection> named_read_model(std::string_view name) {
  auto p = read_model(name);
  if (!p)
    fmt::print(stderr,
               "order-system: no read model '{}' (order_summary, customer_stats, product_sales)\n",
               name);
  return p;
}

int rebuild(context& ctx, const serve_options& o) {
  auto p = named_read_model(o.name);
  if (!p) return exit_usage;
  int code = exit_ok;
  auto* conn = connection_of(ctx, code);
  if (!conn) return code;
  jetsource::rebuild_options ro;
  ro.progress = show;
  auto r = jetsource::rebuild(*conn, *p, read_model_options(ctx.options(), *p), ro);
  if (!r) return fail("rebuild " + o.name, r.error());
  // Commits (stream messages) in the count and the rate, as the progress line counts them; the
  // wait for a running serve to adopt the file is reported apart, not folded into the rate.
  fmt::print(
      "rebuilt {}: {} commits ({} events) in {:.2f} s ({:.0f} commits/s){}; now serving {} ({})\n",
      o.name, r->commits, r->events, r->replay_seconds,
      r->replay_seconds > 0 ? static_cast<double>(r->commits) / r->replay_seconds : 0.0,
      r->resumed ? " (resumed)" : "", r->file.filename().string(),
      r->adopted_by_live
          ? fmt::format("adopted by the running serve after {:.2f} s more", r->adopt_seconds)
          : std::string("switched by this command"));
  return exit_ok;
}

void print_line(std::string_view projection, const jetsource::dead_letter& d) {
  fmt::print("{} seq {} {}/{} v{}-{} {} {} {}\n", projection, d.sequence, d.aggregate_type,
             d.aggregate_id, d.first_version, d.last_version, d.kind, d.event_type, d.error);
}

int dead_letters(context& ctx, const serve_options& o) {
  if (!o.name.empty() && !read_model(o.name)) {
    fmt::print(stderr, "order-system: no read model '{}'\n", o.name);
    return exit_usage;
  }
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const auto& p : read_models()) {
    if (!o.name.empty() && p.name() != o.name) continue;
    auto db = jetsource::open_read_model(read_model_options(ctx.options(), p).database);
    if (!db && db.error().is(jetsource::errc::not_found)) continue;  // not built: none
    if (!db) return fail("dead letters of " + p.name(), db.error());
    auto list = jetsource::read_dead_letters(*db);
    if (!list) return fail("dead letters of " + p.name(), list.error());
    for (const auto& d : *list) {
      all.push_back(dead_letter_view(p.name(), d));
      if (!o.json) print_line(p.name(), d);
    }
  }
  if (o.json)
    fmt::print("{}\n", all.dump());
  else if (all.empty())
    fmt::print("no dead letters\n");
  return exit_ok;
}

// -- projections retry|skip NAME AGGREGATE_ID ---------------------------------------------------

struct repair_options {
  std::string name, aggregate_id;
  bool json = false;
  int timeout_s = 30;
};

// Retries (or skips the poison message of) one order's dead letters in one read model: done by
// the running serve when one runs on the read model (handed over through the library), by this
// command otherwise; then lists what remains of the order's dead letters.
int repair(context& ctx, const repair_options& o, bool skip) {
  auto p = named_read_model(o.name);
  if (!p) return exit_usage;
  const auto options = read_model_options(ctx.options(), *p);
  const std::string type(order::type_name);
  const auto timeout = std::chrono::seconds(o.timeout_s);
  auto done = skip ? jetsource::request_skip(*p, options, type, o.aggregate_id, timeout)
                   : jetsource::request_retry(*p, options, type, o.aggregate_id, timeout);
  const char* verb = skip ? "skip" : "retry";
  if (!done) return fail(fmt::format("{} {} {}", verb, o.name, o.aggregate_id), done.error());
  std::vector<jetsource::dead_letter> left;
  if (auto db = jetsource::open_read_model(options.database))
    if (auto list = jetsource::read_dead_letters(*db))
      for (auto& d : *list)
        if (d.aggregate_type == type && d.aggregate_id == o.aggregate_id) left.push_back(d);
  const char* by = done->by_running_projector ? "the running serve" : "this command";
  if (o.json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& d : left) rows.push_back(dead_letter_view(o.name, d));
    nlohmann::ordered_json j = {{"projection", o.name},
                                {"action", verb},
                                {"aggregate_type", type},
                                {"aggregate_id", o.aggregate_id},
                                {"by", by},
                                {"remaining", done->remaining},
                                {"dead_letters", rows}};
    fmt::print("{}\n", j.dump());
    return exit_ok;
  }
  fmt::print("{} {} {} in {} (by {}): {} dead letters remain\n", skip ? "skipped" : "retried", type,
             o.aggregate_id, o.name, by, done->remaining);
  for (const auto& d : left) print_line(o.name, d);
  return exit_ok;
}

void add_repair_commands(CLI::App& group, action& chosen) {
  auto add = [&](const char* name, const char* what, bool skip) {
    auto o = std::make_shared<repair_options>();
    auto* sub = group.add_subcommand(name, what);
    sub->add_option("NAME", o->name, "order_summary | customer_stats | product_sales")->required();
    sub->add_option("AGGREGATE_ID", o->aggregate_id, "the order whose dead letters to repair")
        ->required()
        ->check(subject_token("order id"));
    sub->add_flag("--json", o->json, "print JSON");
    sub->add_option("--timeout", o->timeout_s,
                    "seconds to wait for a running serve to carry it out (default 30)")
        ->check(CLI::Range(1, 3600));
    sub->footer(
        "Done by the running `serve` when one runs on the read model, by this command "
        "otherwise.\n" +
        exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_not_found}) +
        "\n(4: no such read model file, or the order has no dead letters in it)");
    sub->callback(
        [&chosen, o, skip] { chosen = [o, skip](context& ctx) { return repair(ctx, *o, skip); }; });
  };
  add("retry", "re-apply an order's dead letters (after fixing the cause)", false);
  add("skip", "count an order's poison event as applied without running it, then retry the rest",
      true);
}

}  // namespace

void add_serve_commands(CLI::App& app, action& chosen) {
  auto o = std::make_shared<serve_options>();
  auto bind = [&chosen, o](CLI::App* sub, int (*run)(context&, const serve_options&)) {
    sub->callback([&chosen, o, run] { chosen = [o, run](context& ctx) { return run(ctx, *o); }; });
  };
  auto* sv = app.add_subcommand("serve", "run every read model until SIGINT/SIGTERM");
  sv->add_option("--http", o->http,
                 "also answer the HTTP API on HOST:PORT, e.g. 127.0.0.1:8080 (docs/http-api.md)");
  auto* react = sv->add_flag("--react", o->react,
                             "also run the reactors as one member of their groups, as `react` "
                             "does (the options below go with it)");
  add_reactor_run_options(sv, o->reactors);
  for (const char* name : {"--instance", "--webhook", "--lease-ms", "--webhook-timeout-ms"})
    sv->get_option(name)->needs(react);
  bind(sv, serve);

  auto* group = app.add_subcommand(
      "projections", "the read models: status, rebuild, dead letters (list, retry, skip)");
  group->require_subcommand(1);
  auto* st = group->add_subcommand("status", "each read model's position, lag and dead letters");
  st->add_flag("--json", o->json, "print JSON");
  bind(st, status);
  auto* rb = group->add_subcommand("rebuild", "rebuild a read model by replaying the stream");
  rb->add_option("NAME", o->name, "order_summary | customer_stats | product_sales")->required();
  bind(rb, rebuild);
  auto* dl = group->add_subcommand("dead-letters", "events a read model could not apply");
  dl->add_option("NAME", o->name, "one read model (default: all)");
  dl->add_flag("--json", o->json, "print JSON");
  bind(dl, dead_letters);
  add_repair_commands(*group, chosen);
}

}  // namespace order_system::cli
