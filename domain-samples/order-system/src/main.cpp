// order-system: the jetsource sample's command line. Parses the global options, lets each
// subcommand group add its subcommands, runs the chosen one and turns its outcome into the
// exit code (0 ok, 1 infrastructure, 2 usage / invalid argument, 3 rejected, 4 not found).
// The library logs warnings and errors on stderr; -v adds its info lines.
#include "cli.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace {

// The word that is not a subcommand, when parsing failed because one was required: CLI11 only
// says "A subcommand is required". Empty when that is not what happened.
std::string unknown_subcommand(CLI::App& app, std::string& choices) {
  CLI::App* deepest = &app;
  for (auto parsed = deepest->get_subcommands(); !parsed.empty();
       parsed = deepest->get_subcommands())
    deepest = parsed.front();
  if (deepest->get_require_subcommand_min() == 0) return {};
  for (CLI::App* a = deepest; a != nullptr; a = a->get_parent()) {
    auto left = a->remaining();
    if (left.empty()) continue;
    if (left.front().starts_with('-')) return {};
    for (const auto* sub : deepest->get_subcommands([](CLI::App*) { return true; }))
      choices += (choices.empty() ? "" : ", ") + sub->get_name();
    return left.front();
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = order_system::cli;
  spdlog::set_level(spdlog::level::warn);  // before the library creates its logger

  CLI::App app{"order-system: orders on jetsource (event sourcing on NATS JetStream)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommands (inherited by them)
  cli::globals globals;
  app.add_option("--nats-url", globals.nats_url,
                 "NATS server URL, or several comma-separated for a cluster (default: an embedded "
                 "nats-server storing under --data-dir)")
      ->check(CLI::Validator(
          [](std::string& url) -> std::string {
            return url.empty() ? "an empty URL (leave --nats-url out to use the embedded server)"
                               : "";
          },
          "URL"));
  app.add_option("--replicas", globals.replicas,
                 "replicas of the ORDERS stream when this command creates it (default 1; an "
                 "existing stream with other replicas is an error)")
      ->check(CLI::Range(1, 5));
  app.add_option("--data-dir", globals.data_dir,
                 "read models and the embedded server's store (default: ./.order-system)");
  cli::add_security_options(app, globals);
  app.add_flag("-v,--verbose", globals.verbose,
               "also log the library's info lines on stderr (default: warnings and errors only)");

  cli::action chosen;
  cli::add_order_commands(app, chosen);
  cli::add_query_commands(app, chosen);
  cli::add_stock_commands(app, chosen);
  cli::add_serve_commands(app, chosen);
  cli::add_customer_commands(app, chosen);
  cli::add_react_commands(app, chosen);
  cli::add_load_commands(app, chosen);
  cli::add_backup_commands(app, chosen);
  cli::add_exit_code_footers(app);
  app.footer(cli::exit_codes_footer(
      {cli::exit_ok, cli::exit_failure, cli::exit_usage, cli::exit_rejected, cli::exit_not_found}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::string choices;
    auto word = dynamic_cast<const CLI::RequiredError*>(&e) ? unknown_subcommand(app, choices)
                                                            : std::string{};
    if (!word.empty()) {
      fmt::print(stderr, "order-system: '{}' is not a command here (expected one of: {})\n", word,
                 choices);
      return cli::exit_usage;
    }
    return app.exit(e) == 0 ? cli::exit_ok : cli::exit_usage;  // help: 0; anything else: 2
  }
  if (globals.verbose) spdlog::set_level(spdlog::level::info);  // the library logs after parsing
  if (!chosen) {  // a group given without one of its subcommands
    fmt::print(stderr, "{}", app.help());
    return cli::exit_usage;
  }
  try {
    cli::context ctx{globals};
    return chosen(ctx);
  } catch (const std::exception& e) {
    fmt::print(stderr, "order-system: {}\n", e.what());
    return cli::exit_failure;
  }
}
