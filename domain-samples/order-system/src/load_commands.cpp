// `order-system load` (a workload generator through the real command path) and
// `order-system demo` (the whole sample in one command, for `make demo`).
#include "cli.hpp"
#include "load_progress.hpp"

#include <jetsource/rebuild.hpp>

#include <fmt/format.h>

#include <unistd.h>
#include <atomic>
#include <map>
#include <random>
#include <thread>

namespace order_system::cli {

namespace {

struct load_options {
  int orders = 1000;
  int customers = 100;
  int concurrency = 8;
  int give_up_after_s = 30;  ///< stop when the server has not answered for this long
};

// Each worker runs whole order lifecycles: create (with 1-3 items), sometimes add or remove an
// item, place, then mostly pay and ship, sometimes cancel. Worker w does orders w, w+C, ...
// Once `stop` is set no new command starts (an order cut short is not counted).
void run_load(jetsource::repository<order>& repo, const load_options& o, const std::string& run_id,
              load_stats& stats, failure_log& failures, const std::atomic<bool>& stop) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < o.concurrency; ++w)
    workers.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) * 7919 + 17);
      auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
      auto exec = [&](const std::string& id, const auto& command) {
        if (stop) return false;
        ++stats.commands;
        auto r = repo.execute(id, command);
        if (r || r.error().is(jetsource::errc::rejected)) stats.answered();
        if (r) return true;
        if (r.error().is(jetsource::errc::rejected)) {
          ++stats.rejected;
          return false;
        }
        // A timeout leaves the outcome unknown: the commit may have landed.
        (r.error().is(jetsource::errc::timeout) ? stats.unknown : stats.failed)++;
        failures.record(id, r.error());
        return false;
      };
      for (int i = w; i < o.orders && !stop; i += o.concurrency) {
        auto id = fmt::format("ord-{}-{:06}", run_id, i);
        create_order create{fmt::format("cust-{:04}", pick(o.customers)), {}};
        std::map<std::string, order_line> lines;
        for (int k = 0, n = 1 + pick(3); k < n; ++k) {
          auto sku = fmt::format("sku-{:03}", pick(40));
          auto price = 199 + 100 * (std::stoi(sku.substr(4)) % 17);  // one price per SKU
          order_line line{sku, 1 + pick(4), price};
          create.items.push_back(line);
          auto& l = lines[sku];
          l = {sku, l.qty + line.qty, price};
        }
        if (!exec(id, create)) continue;
        if (pick(4) == 0) {
          auto sku = fmt::format("sku-{:03}", pick(40));
          std::int64_t price = 199 + 100 * (std::stoi(sku.substr(4)) % 17);
          if (exec(id, add_item{sku, 1, price})) {
            auto& l = lines[sku];
            l = {sku, l.qty + 1, price};
          }
        }
        if (lines.size() > 1 && pick(5) == 0) {
          auto first = lines.begin()->first;
          if (exec(id, remove_item{first})) lines.erase(first);
        }
        int fate = pick(10);
        if (fate == 0) {  // cancelled as a draft
          exec(id, cancel_order{"changed my mind"});
        } else if (exec(id, place_order{})) {
          if (fate == 1) {
            exec(id, cancel_order{"found it cheaper"});
          } else {
            std::int64_t total = 0;
            for (const auto& [sku, l] : lines) total += l.qty * l.unit_price_cents;
            if (exec(id, pay_order{total}) && fate >= 4) exec(id, ship_order{});
          }
        }
        if (!stop) ++stats.orders;
      }
    });
  for (auto& t : workers) t.join();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string run_tag() {
  std::random_device rd;
  return fmt::format("{:06x}", rd() & 0xffffff);
}

// Runs the load with progress on stderr; gives up when the server stops answering. The summary
// line on stdout keeps its shape ("load: N orders, ...") whatever happened.
int load(context& ctx, const load_options& o) {
  auto orders = ctx.orders();
  if (!orders) return fail("load", orders.error());
  load_stats stats;
  failure_log failures;
  std::atomic<bool> stop{false};
  const auto& conn = (*ctx.runtime())->conn;
  load_watch watch{stats, o.orders, conn, std::chrono::seconds{o.give_up_after_s}, stop};
  run_load(**orders, o, run_tag(), stats, failures, stop);
  watch.finish();
  fmt::print(
      "load: {} orders, {} commands in {:.1f} s ({:.0f} commands/s), {} rejected, {} "
      "failed, {} outcome unknown\n",
      stats.orders.load(), stats.commands.load(), stats.seconds,
      static_cast<double>(stats.commands) / std::max(stats.seconds, 1e-9), stats.rejected.load(),
      stats.failed.load(), stats.unknown.load());
  if (auto why = failures.summary(); !why.empty()) fmt::print(stderr, "load: failures: {}\n", why);
  if (!watch.gave_up().empty())
    fmt::print(stderr, "load: {}; last failure: {}; {} of {} orders not run\n", watch.gave_up(),
               failures.last().empty() ? "none" : failures.last(), o.orders - stats.orders.load(),
               o.orders);
  bool clean = !stats.failed && !stats.unknown && watch.gave_up().empty();
  return clean ? exit_ok : exit_failure;
}

// One line redrawn on a terminal (a plain line otherwise, only when `final`).
void bar(const std::string& label, double done, double total, const std::string& tail, bool final) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (!tty && !final) return;
  double f = total > 0 ? std::min(1.0, done / total) : 1.0;
  constexpr int width = 30;
  int filled = static_cast<int>(f * width);
  fmt::print(stderr, "{}{:<16} [{}{}] {:5.1f}% {}{}", tty ? "\r" : "", label,
             std::string(static_cast<std::size_t>(filled), '#'),
             std::string(static_cast<std::size_t>(width - filled), '.'), f * 100, tail,
             final || !tty ? "\n" : "   ");
}

std::vector<std::string> dump(const std::filesystem::path& db_path, const char* sql) {
  std::vector<std::string> out;
  auto db = jetsource::open_read_model(db_path);
  if (!db) return out;
  auto rows = db->query(sql);
  if (!rows) return out;
  for (const auto& r : *rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) line += r.get<std::string>(i) + "|";
    out.push_back(line);
  }
  return out;
}

// The rebuild's outcome in one line, counting commits (stream messages: the unit of its progress
// bar) in both the count and the rate; the wait for the live projector's adoption is apart.
std::string rebuild_summary(const jetsource::rebuild_result& r) {
  return fmt::format(
      "rebuilt {} commits ({} events) in {:.2f} s ({:.0f} commits/s){}; now serving {}", r.commits,
      r.events, r.replay_seconds,
      r.replay_seconds > 0 ? static_cast<double>(r.commits) / r.replay_seconds : 0.0,
      r.adopted_by_live
          ? fmt::format(" + {:.2f} s until the live projector adopted it", r.adopt_seconds)
          : "",
      r.file.filename().string());
}

// One column of a report table: its heading, and whether it holds cents (printed as 822.22).
struct column {
  const char* heading;
  bool money = false;
};

// Prints `title`, then the rows of `sql` as a table under `columns` headings: text left-aligned,
// numbers right-aligned, each column as wide as its widest cell.
void print_table(const std::filesystem::path& db_path, const char* title,
                 const std::vector<column>& columns, const char* sql) {
  fmt::print("{}\n", title);
  std::vector<std::vector<std::string>> cells;
  auto db = jetsource::open_read_model(db_path);
  if (!db) {
    fmt::print("  (cannot read {}: {})\n", db_path.string(), db.error());
    return;
  }
  auto rows = db->query(sql);
  if (!rows) {
    fmt::print("  (cannot read {}: {})\n", db_path.string(), rows.error());
    return;
  }
  for (const auto& r : *rows) {
    auto& line = cells.emplace_back();
    for (std::size_t i = 0; i < columns.size() && i < r.size(); ++i)
      line.push_back(columns[i].money ? fmt::format("{:.2f}", r.get<double>(i) / 100.0)
                                      : r.get<std::string>(i));
  }
  std::vector<std::size_t> width(columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    width[i] = std::string_view(columns[i].heading).size();
    for (const auto& line : cells)
      if (i < line.size()) width[i] = std::max(width[i], line[i].size());
  }
  auto numeric = [&](std::size_t i) {  // right-align a column whose cells are all numbers
    for (const auto& line : cells)
      if (i < line.size() && line[i].find_first_not_of("0123456789.-") != std::string::npos)
        return false;
    return !cells.empty();
  };
  auto print_line = [&](const std::vector<std::string>& line) {
    std::string out;
    for (std::size_t i = 0; i < line.size(); ++i)
      out += numeric(i) ? fmt::format("  {:>{}}", line[i], width[i])
                        : fmt::format("  {:<{}}", line[i], width[i]);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    fmt::print("{}\n", out);
  };
  std::vector<std::string> headings;
  std::vector<std::string> rules;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    headings.emplace_back(columns[i].heading);
    rules.emplace_back(width[i], '-');
  }
  print_line(headings);
  print_line(rules);
  for (const auto& line : cells) print_line(line);
  if (cells.empty()) fmt::print("  (none)\n");
}

int demo(context& outer, const load_options& requested) {
  // The demo always starts clean in its own directory under the data dir.
  globals g = outer.options();
  g.data_dir /= "demo";
  std::error_code ec;
  std::filesystem::remove_all(g.data_dir, ec);
  std::filesystem::create_directories(g.data_dir);
  context ctx{g};
  load_options o = requested;
  fmt::print("jetsource order-system demo: {} orders from {} customers, {} concurrent writers\n",
             o.orders, o.customers, o.concurrency);
  auto store = ctx.store();
  if (!store) return fail("demo", store.error());
  auto orders = ctx.orders();
  if (!orders) return fail("demo", orders.error());
  auto& conn = (*ctx.runtime())->conn;
  fmt::print("  nats-server: {} (embedded, store {})\n", conn.connected_url(),
             (g.data_dir / "nats").string());

  // 1. The read models run live while the writers work.
  std::vector<jetsource::projector> live;
  for (const auto& p : read_models()) {
    auto started = jetsource::projector::start(conn, p, read_model_options(g, p));
    if (!started) return fail("demo: start " + p.name(), started.error());
    live.push_back(std::move(started).value());
  }
  load_stats stats;
  failure_log failures;
  std::atomic<bool> stop{false}, writing{true};
  std::thread writers([&] {
    run_load(**orders, o, "demo", stats, failures, stop);
    writing = false;
  });
  while (writing) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::uint64_t applied = live.front().status() ? live.front().status()->last_applied_seq : 0;
    bar("orders", stats.orders, o.orders,
        fmt::format("{} orders, {} commands; order_summary at seq {}", stats.orders.load(),
                    stats.commands.load(), applied),
        false);
  }
  writers.join();
  bar("orders", stats.orders, o.orders,
      fmt::format("{} orders, {} commands in {:.1f} s ({:.0f} commands/s)", stats.orders.load(),
                  stats.commands.load(), stats.seconds,
                  static_cast<double>(stats.commands) / std::max(stats.seconds, 1e-9)),
      true);
  auto head = (*store)->last_sequence();
  if (!head) return fail("demo", head.error());
  auto t_catch = std::chrono::steady_clock::now();
  for (auto& p : live) {
    while (!p.wait_for(*head, std::chrono::milliseconds(200))) {
      auto st = p.status();
      bar(p.name(), st ? static_cast<double>(st->last_applied_seq) : 0, static_cast<double>(*head),
          "", false);
    }
    auto st = p.status();
    bar(p.name(), 1, 1,
        fmt::format("{} events applied up to seq {}", st ? st->events_applied : 0, *head), true);
  }
  fmt::print("  read models caught up {:.2f} s after the last command\n",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_catch).count());
  if (stats.failed || stats.unknown)
    fmt::print("  WARNING: {} commands failed, {} of unknown outcome: {}\n", stats.failed.load(),
               stats.unknown.load(), failures.summary());

  // 2. The report, read from the read models.
  auto path = [&](const jetsource::projection& p) { return read_model_options(g, p).database; };
  fmt::print("\n");
  print_table(path(customer_stats()), "Top customers by lifetime value:",
              {{"customer"}, {"orders created"}, {"orders paid"}, {"lifetime value", true}},
              "SELECT customer_id, orders_created, orders_paid, lifetime_value_cents "
              "FROM customers ORDER BY lifetime_value_cents DESC, customer_id LIMIT 5");
  print_table(path(product_sales()),
              "Best-selling products by revenue:", {{"product"}, {"units sold"}, {"revenue", true}},
              "SELECT sku, units_sold, revenue_cents FROM products "
              "ORDER BY revenue_cents DESC, sku LIMIT 5");
  print_table(path(order_summary()), "Orders by status:", {{"status"}, {"orders"}, {"total", true}},
              "SELECT status, count(*), coalesce(sum(total_cents), 0) FROM orders "
              "GROUP BY status ORDER BY status");

  // 3. Rebuild one read model by replay while the live one runs, and compare.
  const auto rebuilt = customer_stats();
  const char* everything = "SELECT * FROM customers ORDER BY customer_id";
  auto before = dump(path(rebuilt), everything);
  fmt::print("\nRebuilding {} by replaying the stream (the live one keeps serving)...\n",
             rebuilt.name());
  std::atomic<bool> rebuilding{true};
  std::thread adopt([&] {  // what `serve` does: adopt the rebuilt file when it is ready
    while (rebuilding) {
      for (auto& p : live)
        if (auto r = p.adopt_rebuild(); !r)
          fmt::print(stderr, "adopt {}: {}\n", p.name(), r.error());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  jetsource::rebuild_options ro;
  ro.progress = [](const jetsource::rebuild_progress& p) {
    bar(p.projection, static_cast<double>(p.done), static_cast<double>(p.total),
        fmt::format("{}/{} commits {:.0f} commits/s", p.done, p.total, p.commits_per_s),
        p.total > 0 && p.done >= p.total);
  };
  auto r = jetsource::rebuild(conn, rebuilt, read_model_options(g, rebuilt), ro);
  rebuilding = false;
  adopt.join();
  if (!r) return fail("demo: rebuild", r.error());
  auto after = dump(path(rebuilt), everything);
  bool same = before == after && !after.empty();
  fmt::print("  {}\n", rebuild_summary(*r));
  fmt::print("  rebuilt model {} the live one ({} rows compared)\n",
             same ? "EQUALS" : "DIFFERS FROM", after.size());

  for (auto& p : live)
    if (auto s = p.stop(); !s) return fail("demo: stop", s.error());
  fmt::print("\ndemo done; data in {} (removed at the next demo)\n", g.data_dir.string());
  return same && !stats.failed && !stats.unknown ? exit_ok : exit_failure;
}

}  // namespace

void add_load_commands(CLI::App& app, action& chosen) {
  auto o = std::make_shared<load_options>();
  auto* load_cmd = app.add_subcommand("load", "generate orders through the command path");
  load_cmd->add_option("--orders", o->orders, "orders to run")
      ->required()
      ->check(CLI::PositiveNumber);
  load_cmd->add_option("--customers", o->customers, "distinct customers (default 100)")
      ->check(CLI::PositiveNumber);
  load_cmd->add_option("--concurrency", o->concurrency, "concurrent writers (default 8)")
      ->check(CLI::Range(1, 256));
  load_cmd
      ->add_option("--give-up-after", o->give_up_after_s,
                   "stop when the server has not answered any command for this many seconds "
                   "(default 30)")
      ->check(CLI::PositiveNumber);
  load_cmd->callback([&chosen, o] { chosen = [o](context& ctx) { return load(ctx, *o); }; });

  auto demo_o = std::make_shared<load_options>(load_options{3000, 300, 8});
  auto* demo_cmd = app.add_subcommand(
      "demo", "the whole sample: embedded server, writers, live read models, report, rebuild");
  demo_cmd->add_option("--orders", demo_o->orders, "orders (default 3000)")
      ->check(CLI::PositiveNumber);
  demo_cmd->callback(
      [&chosen, demo_o] { chosen = [demo_o](context& ctx) { return demo(ctx, *demo_o); }; });
}

}  // namespace order_system::cli
