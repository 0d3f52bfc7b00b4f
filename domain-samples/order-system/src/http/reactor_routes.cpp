// The order-system's HTTP API: the reactors (GET /reactors, GET /reactors/dead-letters, POST
// /reactors/{name}/retry|skip/{aggregate_id}) with the same JSON as `reactors ... --json`
// (reactor_service.hpp), and the read models' dead-letter repairs (POST
// /projections/{name}/retry|skip/{aggregate_id}) with the same JSON as `projections retry|skip
// --json`.
#include "api_state.hpp"

#include "../reactor_service.hpp"
#include "../views.hpp"

#include <fmt/format.h>

#include <charconv>

namespace order_system::cli::api {

namespace {

http::response unknown_reactor(std::string_view name) {
  return http::problem(
      404, fmt::format("no reactor '{}' ({}, {})", name, reactor_names[0], reactor_names[1]));
}

// ?wait_ms= (default `fallback`, at most options.max_wait); 400 when not a whole number.
std::optional<http::response> wait_of(const order_api::state& s, const http::request& r,
                                      std::chrono::milliseconds fallback,
                                      std::chrono::milliseconds& out) {
  out = std::min(fallback, s.options.max_wait);
  auto text = r.query("wait_ms");
  if (!text) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc{} || end != text->data() + text->size() || text->empty())
    return http::problem(400,
                         fmt::format("?wait_ms= must be a whole number >= 0, not '{}'", *text));
  out =
      std::min(std::chrono::milliseconds(std::min<std::uint64_t>(v, 1u << 30)), s.options.max_wait);
  return std::nullopt;
}

// POST /reactors/{name}/retry|skip/{aggregate_id}: 200 when the member that owns the order did
// it within ?wait_ms= (default 10 s), 202 when it was asked for but no member has done it yet
// (the request stays in the group's bucket: a member carries it out when one runs).
http::response repair_reactor(order_api::state& s, const http::request& r, bool skip) {
  const std::string name = r.param("name"), id = r.param("aggregate_id");
  if (!is_reactor_name(name)) return unknown_reactor(name);
  if (auto bad = valid_id("aggregate id", id)) return *bad;
  std::chrono::milliseconds wait{};
  if (auto bad = wait_of(s, r, std::chrono::seconds(10), wait)) return *bad;
  const auto stream = orders_stream().stream;
  auto done =
      skip ? jetsource::request_reactor_skip(*s.conn, stream, name, order::type_name, id, wait)
           : jetsource::request_reactor_retry(*s.conn, stream, name, order::type_name, id, wait);
  nlohmann::ordered_json body = {{"reactor", name},
                                 {"action", skip ? "skip" : "retry"},
                                 {"aggregate_type", order::type_name},
                                 {"aggregate_id", id},
                                 {"done", true}};
  if (done) return ok(200, body);
  if (done.error().is(jetsource::errc::timeout)) {
    body["done"] = false;
    return ok(202, body);
  }
  if (done.error().is(jetsource::errc::conflict))  // it failed again: parked anew
    return http::problem(409, done.error().message, "The order failed again and is parked");
  return problem_of(done.error());
}

// POST /projections/{name}/retry|skip/{aggregate_id}: as `projections retry|skip --json`.
http::response repair_projection(order_api::state& s, const http::request& r, bool skip) {
  const std::string name = r.param("name"), id = r.param("aggregate_id");
  auto p = read_model(name);
  if (!p)
    return http::problem(404, fmt::format("no read model '{}' (order_summary, customer_stats, "
                                          "product_sales)",
                                          name));
  if (auto bad = valid_id("aggregate id", id)) return *bad;
  std::chrono::milliseconds wait{};
  if (auto bad = wait_of(s, r, std::chrono::seconds(30), wait)) return *bad;
  const auto options = read_model_options(s.ctx.options(), *p);
  const std::string type(order::type_name);
  auto done = skip ? jetsource::request_skip(*p, options, type, id, wait)
                   : jetsource::request_retry(*p, options, type, id, wait);
  if (!done && done.error().is(jetsource::errc::timeout))
    return http::problem(504, done.error().message);
  if (!done) return problem_of(done.error());
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  if (auto db = jetsource::open_read_model(options.database))
    if (auto list = jetsource::read_dead_letters(*db))
      for (const auto& d : *list)
        if (d.aggregate_type == type && d.aggregate_id == id)
          rows.push_back(dead_letter_view(name, d));
  return ok(200, {{"projection", name},
                  {"action", skip ? "skip" : "retry"},
                  {"aggregate_type", type},
                  {"aggregate_id", id},
                  {"by", done->by_running_projector ? "the running serve" : "this request"},
                  {"remaining", done->remaining},
                  {"dead_letters", rows}});
}

}  // namespace

void add_reactor_routes(order_api::state& s) {
  auto& server = *s.server;
  server.route("GET", "/reactors", [&s](const http::request&) {
    auto all = reactor_statuses_view(*s.conn);
    return all ? ok(200, *all) : problem_of(all.error());
  });
  server.route("GET", "/reactors/dead-letters", [&s](const http::request& r) {
    const std::string name = r.query("name").value_or("");
    if (!name.empty() && !is_reactor_name(name)) return unknown_reactor(name);
    auto all = reactor_dead_letters_view(*s.conn, name);
    return all ? ok(200, *all) : problem_of(all.error());
  });
  for (bool skip : {false, true}) {
    const std::string verb = skip ? "skip" : "retry";
    server.route("POST", "/reactors/{name}/" + verb + "/{aggregate_id}",
                 [&s, skip](const http::request& r) { return repair_reactor(s, r, skip); });
    server.route("POST", "/projections/{name}/" + verb + "/{aggregate_id}",
                 [&s, skip](const http::request& r) { return repair_projection(s, r, skip); });
  }
}

}  // namespace order_system::cli::api
