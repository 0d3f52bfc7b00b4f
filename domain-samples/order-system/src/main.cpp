// order-system: the jetsource sample's command line. Parses the global options, lets each
// subcommand group add its subcommands, runs the chosen one and turns its outcome into the
// exit code (0 ok, 1 infrastructure, 2 usage / invalid argument, 3 rejected, 4 not found).
#include "cli.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>

int main(int argc, char** argv) {
  namespace cli = order_system::cli;
  spdlog::set_level(spdlog::level::warn);  // before the library creates its logger

  CLI::App app{"order-system: orders on jetsource (event sourcing on NATS JetStream)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommands (inherited by them)
  cli::globals globals;
  app.add_option("--nats-url", globals.nats_url,
                 "NATS server URL (default: an embedded nats-server storing under --data-dir)");
  app.add_option("--data-dir", globals.data_dir,
                 "read models and the embedded server's store (default: ./.order-system)");

  cli::action chosen;
  cli::add_order_commands(app, chosen);
  cli::add_query_commands(app, chosen);
  cli::add_serve_commands(app, chosen);
  cli::add_load_commands(app, chosen);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? cli::exit_ok : cli::exit_usage;  // help: 0; anything else: 2
  }
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
