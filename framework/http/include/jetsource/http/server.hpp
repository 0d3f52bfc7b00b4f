// jetsource::http::server: a small HTTP/1.1 server for JSON APIs. Routes with path parameters
// ("/orders/{id}/items/{sku}"), errors as application/problem+json (RFC 9457), a request body
// limit (413), 404 for an unknown path and 405 for a known path with another method, and a
// graceful stop. Built on cpp-httplib (ADR 0013), which stays out of this header.
//
// Thread-safety: route() before start(); handlers then run concurrently on the server's worker
// threads (a thread per connection, one request per thread at a time), so they must be safe to call
// from several threads at once. start() and stop() belong to the thread that owns the server.
//
// clang-format off
//   jetsource::http::server api{{.host = "127.0.0.1", .port = 8080}};
//   api.route("GET", "/orders/{id}", [](const jetsource::http::request& r) {
//     return jetsource::http::json(200, R"({"order_id":")" + r.param("id") + "\"}"); });
//   if (auto ok = api.start(); !ok) { /* ok.error(): the port is taken, ... */ }
// clang-format on
#pragma once

#include <jetsource/result.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetsource::http {

using fields = std::vector<std::pair<std::string, std::string>>;

/// A request as a handler sees it: the body read whole (within the size limit), the path
/// decoded, the path parameters by name.
struct request {
  std::string method;
  std::string path;
  std::string body;
  fields headers;       ///< as sent
  fields query_params;  ///< decoded
  fields params;        ///< path parameters, e.g. {"id", "ord-1"}

  /// The header's value (names compared without case); "" when absent.
  std::string header(std::string_view name) const;
  /// The path parameter (the route named it); "" when absent.
  std::string param(std::string_view name) const;
  /// The query parameter's first value, if present.
  std::optional<std::string> query(std::string_view name) const;
  /// True when the Content-Type is application/json (parameters such as charset allowed).
  bool has_json_body() const;
};

struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  fields headers;  ///< extra headers
};

/// A JSON response with that status and body.
response json(int status, std::string body);

/// An application/problem+json response (RFC 9457): {"type","title","status","detail"}. The
/// title is the status's standard reason phrase unless given.
response problem(int status, std::string_view detail, std::string_view title = {},
                 std::string_view type = "about:blank");

/// The standard reason phrase of a status ("Not Found"); "Error" for one it does not know.
std::string_view reason_phrase(int status);

using handler = std::function<response(const request&)>;

/// Called after each response is written: the route pattern that answered ("" when none did:
/// an unknown path, a request that could not be read), the method, the status and the seconds
/// from the start of routing to the end of the write. On a worker thread: keep it cheap.
using request_observer = std::function<void(std::string_view route_pattern, std::string_view method,
                                            int status, double seconds)>;

struct server_options {
  std::string host = "127.0.0.1";
  int port = 0;                              ///< 0: any free port (see server::port())
  std::size_t max_body_bytes = 1024 * 1024;  ///< larger bodies are refused with 413
  /// Connections served at once: a thread each, started as connections arrive (cpp-httplib
  /// serves a keep-alive connection on one thread for its whole life); beyond it, new
  /// connections wait for a thread.
  std::size_t threads = 128;
  std::chrono::seconds read_timeout{5};  ///< a client that stops sending mid-request
  std::chrono::seconds write_timeout{5};
  /// How long an idle keep-alive connection is kept; also bounds how long stop() waits for
  /// one (in-flight requests are bounded by their handlers).
  std::chrono::seconds keep_alive_timeout{2};
  request_observer on_request;
};

class server {
 public:
  explicit server(server_options options = {});
  ~server();  ///< stops (as stop()) if running
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Adds a route. `pattern` is a path whose segments may be {name} parameters (one whole
  /// segment each). Routes match in the order added. Before start().
  void route(std::string method, std::string pattern, handler h);

  /// Binds the address and starts serving on the worker threads. errc::io when it cannot bind
  /// (the message says which address and why).
  result<void> start();

  /// The port it listens on (after start(); the one chosen when options.port was 0).
  int port() const noexcept;

  /// Stops accepting connections, lets the requests in flight finish and their responses go
  /// out, then returns. Connections accepted but not yet read are closed unanswered. Idempotent.
  void stop();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace jetsource::http
