// The connection a process runs on: the configured server(s), or an embedded nats-server when
// no URL is configured.
//
// Thread-safety: as connection; one per process.
//
// clang-format off
//   auto rt = jetsource::runtime::open(options, ".order-system/nats");  // embedded if no URLs
//   if (!rt) { fmt::print(stderr, "{}\n", rt.error()); return 1; }
//   auto store = jetsource::event_store::open(rt->conn, {.stream = "ORDERS",
//                                                        .subject_prefix = "orders"});
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/server.hpp>

#include <filesystem>
#include <optional>

namespace jetsource {

struct runtime {
  std::optional<embedded_server> server;  ///< set when embedded; stopped after conn closes
  connection conn;

  /// Connects to options.urls, or (when empty) starts an embedded server storing its data in
  /// `embedded_data_dir` and connects to it.
  static result<runtime> open(connection_options options,
                              const std::filesystem::path& embedded_data_dir);
};

}  // namespace jetsource
