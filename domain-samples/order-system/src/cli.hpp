// The order-system command line: what every subcommand group shares (global options, the
// connection to the event store, exit codes). Each group (order, query, serve, ...) lives in
// its own file and adds its subcommands through an add_*_commands function declared here.
//
// Thread-safety: a context belongs to main's thread.
//
//   cli::action chosen;
//   cli::add_order_commands(app, chosen);          // in main, before parsing
//   app.parse(argc, argv);
//   cli::context ctx{globals};  return chosen(ctx);
#pragma once

#include <order_system/customer.hpp>
#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stock.hpp>
#include <order_system/stream.hpp>

#include <jetsource/event_store.hpp>
#include <jetsource/personal.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/result.hpp>
#include <jetsource/runtime.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace order_system::cli {

/// The process's exit codes (the contract).
enum exit_code : int {
  exit_ok = 0,
  exit_failure = 1,    ///< infrastructure: no server, a broken stream, ...
  exit_usage = 2,      ///< bad usage or an invalid argument
  exit_rejected = 3,   ///< refused by a rule of the order's state
  exit_not_found = 4,  ///< no such order (customer, SKU)
};

/// The global options.
struct globals {
  std::string nats_url;  ///< "" = an embedded nats-server; several comma-separated: a cluster
  int replicas = 1;      ///< replicas of the ORDERS stream (created so, or verified to be so)
  std::filesystem::path data_dir = ".order-system";
  bool verbose = false;  ///< -v: the library's info lines too (default: warnings and errors)
  // A secured server (with nats_url; security_options.cpp). Password and token: environment only.
  std::string tls_ca, tls_cert, tls_key;  ///< --tls-ca, --tls-cert, --tls-key (PEM files)
  std::string creds, user;                ///< --creds FILE, --user NAME
};

/// --tls-ca, --tls-cert, --tls-key, --creds, --user (security_options.cpp); after --nats-url.
void add_security_options(CLI::App& app, globals& g);

/// Puts them, and NATS_PASSWORD / NATS_TOKEN from the environment, into `o` (with a URL only:
/// the embedded server needs none).
void apply_security_options(const globals& g, jetsource::connection_options& o);

/// What a subcommand needs at run time. Connects on first use, so bad usage fails before any
/// I/O and subcommands that need no server start none.
///
/// Without --nats-url, every process uses the one embedded server of DATA_DIR/nats: the first
/// starts it, the others join it, and the last one out stops it (jetsource::runtime::open; see
/// <jetsource/runtime.hpp>).
class context {
 public:
  explicit context(globals g) : globals_(std::move(g)) {}
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context();  // uninstalls the key store before the connection closes

  const globals& options() const noexcept { return globals_; }
  /// The connection (and the embedded server, when this process started it), with the key
  /// store of personal data (jsk-ORDERS) opened and installed for this process.
  jetsource::result<jetsource::runtime*> runtime();
  /// True once the connection is up (runtime() may still have failed on the key store).
  bool connected() const noexcept { return runtime_.has_value(); }
  /// The key store of the customers' personal data (opened by runtime()).
  jetsource::result<jetsource::key_store*> keys();
  /// The ORDERS stream, created on first use.
  jetsource::result<jetsource::event_store*> store();
  /// The repository of orders on that stream.
  jetsource::result<jetsource::repository<order>*> orders();
  /// The repository of SKUs' stock on that stream (subjects orders.Stock.<partition>.<SKU>).
  jetsource::result<jetsource::repository<stock>*> stocks();

 private:
  jetsource::result<jetsource::runtime> open_runtime();

  globals globals_;
  // Declared in the order they are opened: destroyed in reverse.
  std::optional<jetsource::runtime> runtime_;
  std::optional<jetsource::key_store> keys_;
  std::optional<jetsource::event_store> store_;
  std::unique_ptr<jetsource::repository<order>> orders_;
  std::unique_ptr<jetsource::repository<stock>> stocks_;
};

/// The work of the subcommand chosen on the command line, run after parsing; returns the exit
/// code.
using action = std::function<int(context&)>;

/// `order create|add-item|remove-item|place|pay|ship|cancel` (order_commands.cpp).
void add_order_commands(CLI::App& app, action& chosen);

/// `query order|customer|product` (query_commands.cpp): reads the read models.
void add_query_commands(CLI::App& app, action& chosen);

/// `stock receive` and `query stock` (stock_commands.cpp): the inventory's Stock aggregates.
void add_stock_commands(CLI::App& app, action& chosen);

/// `react` and `reactors status|dead-letters|retry|skip` (react_commands.cpp): the inventory
/// and notification reactors.
void add_react_commands(CLI::App& app, action& chosen);

/// `serve` and `projections status|rebuild|dead-letters` (serve_commands.cpp).
void add_serve_commands(CLI::App& app, action& chosen);

/// `customer forget` (customer_commands.cpp): crypto-shredding of a customer's personal data.
void add_customer_commands(CLI::App& app, action& chosen);

/// `load` and `demo` (load_commands.cpp).
void add_load_commands(CLI::App& app, action& chosen);

/// `backup PATH` and `restore PATH` (backup_commands.cpp): the ORDERS stream to a file and back.
void add_backup_commands(CLI::App& app, action& chosen);

/// How the sample runs a read model: stream ORDERS, database DATA_DIR/<name>.db.
jetsource::projector_options read_model_options(const globals& g, const jetsource::projection& p);

/// The read model named `name` (order_summary, customer_stats, product_sales), if any.
std::optional<jetsource::projection> read_model(std::string_view name);

/// Waits up to `timeout` for SIGINT/SIGTERM (blocked by jetsource::block_termination_signals).
bool termination_requested(std::chrono::milliseconds timeout);

/// A CLI11 check that a value is a valid subject token (order, customer and SKU ids).
CLI::Validator subject_token(std::string what);

/// A whole-number option `name`, parsed strictly into `target` (CLI11 would clamp an
/// out-of-range number; order_commands.cpp).
CLI::Option* add_number(CLI::App* sub, const char* name, std::int64_t& target, const char* help);

/// A help footer naming the exit codes `codes`: "Exit codes:", then one line per code.
std::string exit_codes_footer(std::initializer_list<exit_code> codes);

/// Gives every command without a help footer one naming its exit codes: `query ...` 0, 1, 2, 4;
/// the others 0, 1, 2 (a group that returns 3 or 4 sets its own footer).
void add_exit_code_footers(CLI::App& app);

/// 2 for an invalid argument or id, 3 for a domain rejection, 4 for not found, 1 otherwise.
int exit_code_of(const jetsource::error& e);

/// Prints "order-system: <what>: <message>" on stderr; returns exit_code_of(e).
int fail(std::string_view what, const jetsource::error& e);

}  // namespace order_system::cli
