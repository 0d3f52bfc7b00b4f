// The order-system's HTTP API (docs/http-api.md): `order-system serve --http HOST:PORT` answers
// commands, queries and operations over HTTP while it runs the read models.
//
// Thread-safety: start() and stop() on serve's thread; requests run on the server's threads
// and use the context's repository and connection (opened before start) and the running
// projectors (whose members may be called from any thread; the vector must not change while the
// API runs).
//
//   auto api = order_api::start(ctx, "127.0.0.1:8080", running);
//   if (!api) return fail("serve --http", api.error());
//   ... (*api)->stop();   // before the read models stop
#pragma once

#include "../cli.hpp"

#include <jetsource/http/server.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace order_system::cli {

struct order_api_options {
  std::size_t threads = 128;                   ///< connections served at once (a thread each)
  std::size_t max_body_bytes = 64 * 1024;      ///< larger request bodies: 413
  std::uint64_t ready_max_pending = 1000;      ///< /readyz: at most this many messages behind
  std::chrono::milliseconds max_wait{30'000};  ///< the longest ?wait_ms= honoured
  /// Commands through execute_async (the request's thread waits for its outcome while other
  /// requests' commands share the store's in-flight window), or execute (ADR 0013, amended).
  bool pipelined = true;
  jetsource::http::request_observer on_request;  ///< after each response (metrics)
  /// GET /metrics's body (Prometheus text exposition); unset: an empty body.
  std::function<std::string()> render_metrics;
};

class order_api {
 public:
  /// Opens the store (the context's repository), then serves on `listen` ("HOST:PORT").
  /// errc::invalid_argument for a malformed address, errc::io when it cannot listen.
  static jetsource::result<std::unique_ptr<order_api>> start(
      context& ctx, std::string_view listen, std::vector<jetsource::projector>& running,
      order_api_options options = {});

  /// The port it listens on.
  int port() const noexcept;
  /// Stops accepting, answers the requests in flight, returns. Idempotent.
  void stop();

  ~order_api();
  order_api(const order_api&) = delete;
  order_api& operator=(const order_api&) = delete;

  struct state;

 private:
  explicit order_api(std::unique_ptr<state> s);
  std::unique_ptr<state> state_;
};

/// `serve --http LISTEN`: starts the API and says on stderr where it listens; nullptr when
/// `listen` is empty (no --http).
jetsource::result<std::unique_ptr<order_api>> serve_http(context& ctx, std::string_view listen,
                                                         std::vector<jetsource::projector>& running,
                                                         order_api_options options = {});

}  // namespace order_system::cli
