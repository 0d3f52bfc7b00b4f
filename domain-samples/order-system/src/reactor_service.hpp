// The order-system's reactors as a process runs them (`react`, `serve --react`) and as any
// process reads them (`reactors status|dead-letters`, GET /reactors...): one start/stop and one
// JSON shape for the command line and the HTTP API.
//
// Thread-safety: running_reactors belongs to the thread that started it (start, stop); the view
// functions only read the groups' buckets and may run on several threads at once.
//
//   auto hook = prepare_reactors(o);                      // before any I/O: a bad URL fails here
//   auto running = running_reactors::start(ctx, o, std::move(*hook));
//   ... until SIGTERM: running->stop();                  // hands the partitions over
#pragma once

#include "cli.hpp"

#include <order_system/reactors.hpp>

#include <jetsource/reactor.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace order_system::cli {

/// The sample's reactors, in the order they are listed.
inline constexpr std::array<std::string_view, 2> reactor_names{inventory_reactor_name,
                                                               notifications_reactor_name};

/// True for "inventory" and "notifications".
bool is_reactor_name(std::string_view name);

/// How this process runs the reactors (react, serve --react).
struct reactor_run_options {
  std::string instance;  ///< "" = a random one
  std::string webhook;   ///< "" = the notification reactor does not run
  int lease_ms = 6000;
  int webhook_timeout_ms = 5000;
};

/// --instance, --webhook, --lease-ms, --webhook-timeout-ms on `sub` (react, serve).
void add_reactor_run_options(CLI::App* sub, reactor_run_options& o);

/// The webhook of `o` checked (errc::invalid_argument for a bad URL); nullopt without one.
jetsource::result<std::optional<webhook>> prepare_reactors(const reactor_run_options& o);

/// This process's members of the reactors' groups (inventory, and notifications with a webhook).
class running_reactors {
 public:
  /// Opens the Stock repository (the stream exists before the groups), then joins each group.
  static jetsource::result<running_reactors> start(context& ctx, const reactor_run_options& o,
                                                   std::optional<webhook> hook);

  /// Stops every member at once (each hands its partitions over); failures are printed on
  /// stderr. Returns exit_ok or the first failure's exit code. Idempotent.
  int stop();

  /// Prints on stderr, once each, the members that stopped working by themselves (their user
  /// lacks a permission: reactor_member::failure); exit_failure when any has, else exit_ok.
  int report_failures();

  /// "inventory, notifications -> URL": what runs, for a start-up line.
  std::string describe() const;
  /// The instance name of this process's members.
  const std::string& instance() const;

 private:
  std::vector<jetsource::reactor_member> members_;
  std::vector<bool> reported_;  // members_[i]'s failure was printed
  std::string webhook_url_;
};

/// One reactor as `reactors status --json` prints it: {"reactor","state","mode","position",
/// "pending","members":[{"instance","host","pid","partitions","position","pending"}],
/// "parked":[parked_view...],"dead_letters"}; nullopt status: "never started".
nlohmann::ordered_json reactor_status_view(std::string_view name,
                                           const std::optional<jetsource::reactor_status>& s);

/// A parked aggregate as `reactors dead-letters --json` prints it.
nlohmann::ordered_json parked_view(std::string_view reactor, const jetsource::parked_aggregate& p);

/// Every reactor's status (an array of reactor_status_view), read from the groups' buckets.
jetsource::result<nlohmann::ordered_json> reactor_statuses_view(const jetsource::connection& conn);

/// The parked aggregates of reactor `name` ("" = all), an array of parked_view.
jetsource::result<nlohmann::ordered_json> reactor_dead_letters_view(
    const jetsource::connection& conn, std::string_view name);

}  // namespace order_system::cli
