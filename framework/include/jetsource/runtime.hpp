// The connection a process runs on: the configured server(s), or the one embedded nats-server
// of a store directory, shared by every process that opens that directory.
//
// Thread-safety: as connection; one per process.
//
// clang-format off
//   auto rt = jetsource::runtime::open(options, ".order-system/nats");  // embedded if no URLs
//   if (!rt) { fmt::print(stderr, "{}\n", rt.error()); return 1; }
//   auto store = jetsource::event_store::open(rt->conn, {.stream = "ORDERS",
//                                                        .subject_prefix = "orders"});
// clang-format on
//
// Embedded (no URL): one nats-server per store, whatever the number of processes (or runtimes)
// that open `embedded_data_dir`. The first one starts it (runtime::server is set) and writes
// its URL to <dir>/url; the others join it (connect to that URL; runtime::server is empty).
// The server runs while anyone uses the store: it outlives the process that started it if
// others still use it, and the last one out stops it. A server whose users all died (kill -9)
// keeps running until a process opens the store again: that one joins it, and stops it when it
// leaves. Why: docs/adr/0010; details: docs/operations.md.
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
  /// Internal (embedded only): this runtime's use of the store's server.
  std::shared_ptr<detail::embedded_store_membership> membership;
  /// Set when this process started the embedded server; stopped after conn closes if this is
  /// the last user of the store, else left running for the others. Empty with URLs, and in a
  /// runtime that joined a running server.
  std::optional<embedded_server> server;
  connection conn;

  /// Connects to options.urls, or (when empty) to the embedded server storing its data in
  /// `embedded_data_dir`: starts it when none runs on that store, joins it otherwise (waiting
  /// up to 30 s for one that is starting or being stopped).
  static result<runtime> open(connection_options options,
                              const std::filesystem::path& embedded_data_dir);

  runtime(std::shared_ptr<detail::embedded_store_membership> m, std::optional<embedded_server> s,
          connection c);
  runtime(runtime&&) noexcept = default;
  runtime& operator=(runtime&& other) noexcept;
  ~runtime();  ///< leaves the store: the last user stops its server
};

}  // namespace jetsource
