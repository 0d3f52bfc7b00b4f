// The order-system's HTTP API: starting and stopping it, the operations routes (/healthz,
// /readyz, /metrics, /projections) and the helpers every route shares (bodies, errors).
#include "api_state.hpp"
#include "status_page.hpp"

#include "../views.hpp"

#include <fmt/format.h>
#include <jetsource/metrics.hpp>

#include <charconv>
#include <cstdlib>
#include <limits>

namespace order_system::cli {

namespace api {

http::response ok(int status, const nlohmann::ordered_json& body) {
  return http::json(status, body.dump());
}

http::response problem_of(const jetsource::error& e) {
  // A domain error's message is the sentence itself; other errors keep their code's name.
  const std::string detail = e.rejection ? e.message : jetsource::to_string(e);
  switch (e.code) {
    case jetsource::errc::invalid_argument:
    case jetsource::errc::invalid_id:
    case jetsource::errc::encode_failed:
      return http::problem(400, detail);
    case jetsource::errc::payload_too_large:
      return http::problem(413, detail);
    case jetsource::errc::not_found:
      return http::problem(404, detail);
    case jetsource::errc::rejected:
      return http::problem(409, detail, "Rejected by a rule of the order's state");
    case jetsource::errc::timeout:
      return http::problem(503, detail +
                                    " (the outcome is unknown: retry with the same "
                                    "Idempotency-Key)");
    case jetsource::errc::unreachable:
    case jetsource::errc::busy:
    case jetsource::errc::server_error:
    case jetsource::errc::stream_config_mismatch:
    case jetsource::errc::server_binary:
    case jetsource::errc::io:
      return http::problem(503, detail);
    default:
      return http::problem(500, detail);
  }
}

std::optional<http::response> parse_object(const http::request& r, nlohmann::json& out,
                                           bool optional) {
  if (optional && r.body.empty()) {
    out = nlohmann::json::object();
    return std::nullopt;
  }
  if (!r.has_json_body())
    return http::problem(
        415, fmt::format("the body must be application/json, not '{}'", r.header("Content-Type")));
  out = nlohmann::json::parse(r.body, nullptr, false);
  if (out.is_discarded()) return http::problem(400, "the body is not valid JSON");
  if (!out.is_object()) return http::problem(400, "the body must be a JSON object");
  return std::nullopt;
}

std::optional<http::response> text_field(const nlohmann::json& j, const char* name,
                                         std::string& out, bool required) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (required) return http::problem(400, fmt::format("\"{}\" is required", name));
    return std::nullopt;
  }
  if (!it->is_string()) return http::problem(400, fmt::format("\"{}\" must be a string", name));
  out = it->get<std::string>();
  return std::nullopt;
}

std::optional<http::response> int_field(const nlohmann::json& j, const char* name,
                                        std::int64_t& out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null())
    return http::problem(400, fmt::format("\"{}\" is required", name));
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return http::problem(400, fmt::format("\"{}\" is out of range (a 64-bit whole number)", name));
  if (!it->is_number_integer())
    return http::problem(400, fmt::format("\"{}\" must be a whole number", name));
  out = it->get<std::int64_t>();
  return std::nullopt;
}

std::optional<http::response> valid_id(std::string_view what, const std::string& value) {
  auto ok = jetsource::validate_token(what, value);
  if (!ok) return http::problem(400, ok.error().message);
  return std::nullopt;
}

}  // namespace api

namespace {

using api::ok;

// 200 when connected, every read model runs and none is more than ready_max_pending behind.
http::response ready(order_api::state& s) {
  if (!s.conn->connected()) return http::problem(503, "not connected to NATS (reconnecting)");
  for (const auto& p : read_models())
    if (!s.models.contains(p.name()))
      return http::problem(503, fmt::format("the read model {} is not running", p.name()));
  for (const auto& [name, p] : s.models) {
    if (auto f = p->failure())
      return http::problem(503, fmt::format("the read model {} stopped: {}", name, *f));
    auto st = p->status();
    if (!st) return http::problem(503, fmt::format("status of {}: {}", name, st.error()));
    if (st->pending > s.options.ready_max_pending)
      return http::problem(503, fmt::format("the read model {} is {} messages behind (at most {})",
                                            name, st->pending, s.options.ready_max_pending));
  }
  return ok(200, {{"status", "ready"}});
}

void add_operations_routes(order_api::state& s) {
  auto& server = *s.server;
  server.route("GET", "/", [](const http::request&) {  // the status page (status_page.html)
    return http::response{200, "text/html; charset=utf-8", std::string(api::status_page), {}};
  });
  server.route("GET", "/healthz", [](const http::request&) { return ok(200, {{"status", "ok"}}); });
  server.route("GET", "/readyz", [&s](const http::request&) { return ready(s); });
  // Prometheus text exposition (options.render_metrics; serve renders the default registry).
  server.route("GET", "/metrics", [&s](const http::request&) {
    auto& render = s.options.render_metrics;
    return http::response{
        200, std::string(jetsource::metrics::content_type), render ? render() : "", {}};
  });
  server.route("GET", "/projections", [&s](const http::request&) {
    auto all = statuses_view(*s.conn, s.ctx.options());
    return all ? ok(200, *all) : api::problem_of(all.error());
  });
}

// "HOST:PORT" (PORT 0: any free port).
jetsource::result<std::pair<std::string, int>> parse_listen(std::string_view listen) {
  auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string_view::npos && colon > 0) {
    auto digits = listen.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty()) port = -1;
  }
  if (port < 0 || port > 65535)
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "'{}' is not HOST:PORT (e.g. 127.0.0.1:8080)", listen);
  return std::pair{std::string(listen.substr(0, colon)), port};
}

}  // namespace

order_api::order_api(std::unique_ptr<state> s) : state_(std::move(s)) {}
order_api::~order_api() {
  stop();
}

int order_api::port() const noexcept {
  return state_->server->port();
}

void order_api::stop() {
  if (state_ && state_->server) state_->server->stop();
}

jetsource::result<std::unique_ptr<order_api>> order_api::start(
    context& ctx, std::string_view listen, std::vector<jetsource::projector>& running,
    order_api_options options) {
  JETSOURCE_TRY(address, parse_listen(listen));
  JETSOURCE_TRY(rt, ctx.runtime());
  JETSOURCE_TRY(ctx.orders());  // opened here, on serve's thread: requests only read them
  auto s = std::unique_ptr<state>(new state{ctx, std::move(options), &rt->conn, {}, {}});
  for (auto& p : running) s->models.emplace(p.name(), &p);
  http::server_options so;
  so.host = address.first;
  so.port = address.second;
  so.threads = s->options.threads;
  so.max_body_bytes = s->options.max_body_bytes;
  so.on_request = s->options.on_request;
  s->server = std::make_unique<http::server>(std::move(so));
  add_operations_routes(*s);
  api::add_command_routes(*s);
  api::add_query_routes(*s);
  api::add_reactor_routes(*s);
  JETSOURCE_TRY(s->server->start());
  return std::unique_ptr<order_api>(new order_api(std::move(s)));
}

jetsource::result<std::unique_ptr<order_api>> serve_http(context& ctx, std::string_view listen,
                                                         std::vector<jetsource::projector>& running,
                                                         order_api_options options) {
  if (listen.empty()) return std::unique_ptr<order_api>{};
  if (const char* m = std::getenv("JETSOURCE_HTTP_PIPELINED"))
    options.pipelined = *m != '0';  // a measurement switch: 0 = execute (ADR 0013)
  // The process's metrics: what the repository, connection and read models record, and every
  // request (by route pattern, method and status, with its latency).
  if (!options.render_metrics)
    options.render_metrics = [] {
      return jetsource::metrics::render_prometheus(jetsource::metrics::default_registry());
    };
  if (!options.on_request)
    options.on_request = [](std::string_view route, std::string_view method, int status,
                            double seconds) {
      jetsource::metrics::record_http_request(route, method, status, seconds);
    };
  JETSOURCE_TRY(api, order_api::start(ctx, listen, running, std::move(options)));
  auto address = parse_listen(listen);
  fmt::print(stderr, "order-system: HTTP API on http://{}:{} (docs/http-api.md)\n",
             address ? address->first : std::string(listen), api->port());
  return std::move(api);
}

}  // namespace order_system::cli
