// Inside the order-system's HTTP API: what its route handlers share, and the helpers that turn
// request bodies into commands and errors into problem responses.
#pragma once

#include "order_api.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

namespace order_system::cli {

namespace http = jetsource::http;

// Fixed before the server starts; read by every request thread.
struct order_api::state {
  context& ctx;
  order_api_options options;
  jetsource::connection* conn = nullptr;
  std::map<std::string, jetsource::projector*, std::less<>> models;  // by read model name
  std::unique_ptr<http::server> server;
};

namespace api {

/// The problem response of a failed command or query (400, 404, 409, 413, 503, 504, 500).
http::response problem_of(const jetsource::error& e);

/// A 200/201 JSON response.
http::response ok(int status, const nlohmann::ordered_json& body);

/// The request body as a JSON object: 415 unless it is application/json, 400 unless it is a JSON
/// object. An empty body is an empty object when `optional`.
std::optional<http::response> parse_object(const http::request& r, nlohmann::json& out,
                                           bool optional = false);

/// A string field: 400 when present and not a string, or absent and required.
std::optional<http::response> text_field(const nlohmann::json& j, const char* name,
                                         std::string& out, bool required);
/// A whole-number field (64 bits): 400 when absent, not a whole number, or out of range.
std::optional<http::response> int_field(const nlohmann::json& j, const char* name,
                                        std::int64_t& out);
/// 400 unless `value` is a valid id (a subject token), naming `what`.
std::optional<http::response> valid_id(std::string_view what, const std::string& value);

/// Adds the command routes (POST/DELETE /orders...).
void add_command_routes(order_api::state& s);
/// Adds the query routes (GET /orders/{id}, /customers/{id}, /products/{sku}).
void add_query_routes(order_api::state& s);
/// Adds the reactor routes (GET /reactors, /reactors/dead-letters, POST
/// /reactors/{name}/retry|skip/{aggregate_id}) and POST /projections/{name}/retry|skip/{id}.
void add_reactor_routes(order_api::state& s);

}  // namespace api
}  // namespace order_system::cli
