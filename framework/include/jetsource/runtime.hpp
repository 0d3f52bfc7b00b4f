// The connection a process runs on: the configured server(s), or the one embedded nats-server
// of a store directory, shared by every process that opens that directory.
//
// Thread-safety: as connection; one per process.
//
//   auto rt = jetsource::runtime::open(options, ".order-system/nats");   // embedded if no URLs
//   jetsource::event_store::open(rt->conn, {.stream = "ORDERS", .subject_prefix = "orders"});
//
// Embedded (no URL): one nats-server per store, whatever the number of processes. The first
// process to open `embedded_data_dir` owns it: it takes an flock on <dir>/owner.lock, starts the
// server (its child) and writes the server's URL to <dir>/url. Processes that open the same
// directory while it is owned join: they connect to that URL and start nothing. The owner stops
// its server when its runtime goes away (or with the owner, if it dies); a joiner still running
// then takes the store over: it starts the server again, on the same store and the same port,
// and every joiner's connection reconnects to it (a short pause: requests made meanwhile are
// sent after the reconnect; one the old server received and never answered times out). The
// server runs as long as any process uses the store: the last one out stops it. Why take-over
// rather than an orphaned server: docs/adr/0010; details: docs/operations.md.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/server.hpp>

#include <filesystem>
#include <memory>
#include <optional>

namespace jetsource {

namespace detail {
class embedded_store_membership;
}

struct runtime {
  /// Internal (embedded only): this process's part in the store's one server. Declared first,
  /// so it is released last.
  std::shared_ptr<detail::embedded_store_membership> membership;
  /// Set when this process started the embedded server (it owns the store); stopped after conn
  /// closes. Empty with URLs, and in a process that joined another's server.
  std::optional<embedded_server> server;
  connection conn;

  /// Connects to options.urls, or (when empty) to the embedded server storing its data in
  /// `embedded_data_dir`: starts it when no process serves that store, joins it otherwise
  /// (waiting up to 30 s for an owner that is still starting it).
  static result<runtime> open(connection_options options,
                              const std::filesystem::path& embedded_data_dir);
};

}  // namespace jetsource
