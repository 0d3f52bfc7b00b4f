// The order-system's HTTP API: commands (POST/DELETE /orders...) through the same code as
// `order-system order ...` (order_service.hpp), and queries (GET /orders/{id}, ...) with the
// same JSON as `query ... --json` (views.hpp), optionally read-your-writes (?min_sequence=).
#include "api_state.hpp"

#include "../order_service.hpp"
#include "../views.hpp"

#include <fmt/format.h>

#include <charconv>

namespace order_system::cli::api {

namespace {

// Runs one command on order `id`; answers `status` with {"sequence"} (and "order_id" when
// `with_id`). The Idempotency-Key header is the command id: a retry lands once.
template <class Command>
http::response execute(order_api::state& s, const http::request& r, const std::string& id,
                       const Command& command, int status = 200, bool with_id = false) {
  if (auto bad = valid_id("order id", id)) return *bad;
  const std::string key = r.header("Idempotency-Key");
  if (!key.empty())
    if (auto bad = valid_id("Idempotency-Key", key)) return *bad;
  if constexpr (requires { command.malformed(); }) {
    if (auto e = command.malformed()) return http::problem(400, describe(*e));
  }
  if (!s.conn->connected())
    return http::problem(503,
                         "the event store is unavailable: not connected to NATS "
                         "(reconnecting); nothing was stored");
  auto done = s.options.pipelined ? run_command_pipelined(s.ctx, id, command, key)
                                  : run_command(s.ctx, id, command, key);
  if (!done) return problem_of(done.error());
  nlohmann::ordered_json body;
  if (with_id) body["order_id"] = id;
  body["sequence"] = done->sequence;
  return ok(status, body);
}

// {"sku","qty","unit_price_cents"} as an order line.
std::optional<http::response> read_line(const nlohmann::json& j, order_line& line) {
  if (!j.is_object()) return http::problem(400, "an item must be a JSON object");
  if (auto bad = text_field(j, "sku", line.sku, true)) return bad;
  if (auto bad = valid_id("SKU", line.sku)) return bad;
  if (auto bad = int_field(j, "qty", line.qty)) return bad;
  return int_field(j, "unit_price_cents", line.unit_price_cents);
}

http::response create(order_api::state& s, const http::request& r) {
  nlohmann::json j;
  if (auto bad = parse_object(r, j)) return *bad;
  create_order command;
  std::string id;
  if (auto bad = text_field(j, "customer_id", command.customer_id, true)) return *bad;
  if (auto bad = valid_id("customer id", command.customer_id)) return *bad;
  if (auto bad = text_field(j, "order_id", id, false)) return *bad;
  if (auto it = j.find("items"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return http::problem(400, "\"items\" must be an array");
    for (const auto& item : *it) {
      order_line line;
      if (auto bad = read_line(item, line)) return *bad;
      command.items.push_back(std::move(line));
    }
  }
  if (id.empty()) {
    // As `order create --command-id`: a retried create addresses the order its first run made.
    const std::string key = r.header("Idempotency-Key");
    id = key.empty() ? new_order_id() : order_id_for(key);
  }
  return execute(s, r, id, command, 201, true);
}

http::response add(order_api::state& s, const http::request& r) {
  nlohmann::json j;
  if (auto bad = parse_object(r, j)) return *bad;
  order_line line;
  if (auto bad = read_line(j, line)) return *bad;
  return execute(s, r, r.param("id"), add_item{line.sku, line.qty, line.unit_price_cents});
}

http::response pay(order_api::state& s, const http::request& r) {
  nlohmann::json j;
  if (auto bad = parse_object(r, j)) return *bad;
  pay_order command;
  if (auto bad = int_field(j, "amount_cents", command.amount_cents)) return *bad;
  return execute(s, r, r.param("id"), command);
}

http::response cancel(order_api::state& s, const http::request& r) {
  nlohmann::json j;
  if (auto bad = parse_object(r, j, true)) return *bad;
  cancel_order command;
  if (auto bad = text_field(j, "reason", command.reason, false)) return *bad;
  return execute(s, r, r.param("id"), command);
}

// A whole number >= 0 from the query string; 400 when present and not one.
std::optional<http::response> query_number(const http::request& r, const char* name,
                                           std::optional<std::uint64_t>& out) {
  auto text = r.query(name);
  if (!text) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc{} || end != text->data() + text->size() || text->empty())
    return http::problem(400,
                         fmt::format("?{}= must be a whole number >= 0, not '{}'", name, *text));
  out = v;
  return std::nullopt;
}

// Read-your-writes: with ?min_sequence=S, waits (?wait_ms=, default 1000) until the read model
// has applied S; 504 if it has not by then.
std::optional<http::response> wait_applied(order_api::state& s, const http::request& r,
                                           const jetsource::projection& model) {
  std::optional<std::uint64_t> min_sequence, wait_ms;
  if (auto bad = query_number(r, "min_sequence", min_sequence)) return bad;
  if (auto bad = query_number(r, "wait_ms", wait_ms)) return bad;
  if (!min_sequence) return std::nullopt;
  auto it = s.models.find(model.name());
  if (it == s.models.end())
    return http::problem(503, fmt::format("the read model {} is not running", model.name()));
  auto timeout = std::min(std::chrono::milliseconds(wait_ms.value_or(1000)), s.options.max_wait);
  auto applied = it->second->wait_for(*min_sequence, timeout);
  if (applied) return std::nullopt;
  if (applied.error().is(jetsource::errc::timeout))
    return http::problem(504, fmt::format("the {} read model has not applied sequence {} within "
                                          "{} ms; retry later or with a longer ?wait_ms=",
                                          model.name(), *min_sequence, timeout.count()));
  return problem_of(applied.error());
}

using view_fn = jetsource::result<std::optional<nlohmann::ordered_json>> (*)(const globals&,
                                                                             const std::string&);

void add_query(order_api::state& s, std::string pattern, const char* what,
               jetsource::projection model, view_fn view, std::string missing_suffix = {}) {
  s.server->route(
      "GET", std::move(pattern),
      [&s, what, model = std::move(model), view, missing_suffix](const http::request& r) {
        const std::string key = r.param("key");
        if (auto bad = valid_id(fmt::format("{} id", what), key)) return *bad;
        if (auto bad = wait_applied(s, r, model)) return *bad;
        auto found = view(s.ctx.options(), key);
        if (!found) return problem_of(found.error());
        if (!*found)
          return http::problem(404, fmt::format("no {} {}{}", what, key, missing_suffix));
        return ok(200, **found);
      });
}

}  // namespace

void add_command_routes(order_api::state& s) {
  auto& server = *s.server;
  server.route("POST", "/orders", [&s](const http::request& r) { return create(s, r); });
  server.route("POST", "/orders/{id}/items", [&s](const http::request& r) { return add(s, r); });
  server.route("DELETE", "/orders/{id}/items/{sku}", [&s](const http::request& r) {
    const std::string sku = r.param("sku");
    if (auto bad = valid_id("SKU", sku)) return *bad;
    return execute(s, r, r.param("id"), remove_item{sku});
  });
  server.route("POST", "/orders/{id}/place", [&s](const http::request& r) {
    return execute(s, r, r.param("id"), place_order{});
  });
  server.route("POST", "/orders/{id}/ship",
               [&s](const http::request& r) { return execute(s, r, r.param("id"), ship_order{}); });
  server.route("POST", "/orders/{id}/pay", [&s](const http::request& r) { return pay(s, r); });
  server.route("POST", "/orders/{id}/cancel",
               [&s](const http::request& r) { return cancel(s, r); });
}

void add_query_routes(order_api::state& s) {
  add_query(s, "/orders/{key}", "order", order_summary(), order_view);
  add_query(s, "/customers/{key}", "customer", customer_stats(), customer_view);
  add_query(s, "/products/{key}", "product", product_sales(), product_view,
            " (nothing of it was paid yet)");
}

}  // namespace order_system::cli::api
