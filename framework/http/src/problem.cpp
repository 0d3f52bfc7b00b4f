// jetsource::http: requests' accessors and the response builders (JSON, problem+json).
#include <jetsource/http/server.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace jetsource::http {

namespace {

bool same_name(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace

std::string request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (same_name(k, name)) return v;
  return {};
}

std::string request::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

std::optional<std::string> request::query(std::string_view name) const {
  for (const auto& [k, v] : query_params)
    if (k == name) return v;
  return std::nullopt;
}

bool request::has_json_body() const {
  auto type = header("Content-Type");
  auto end = type.find(';');
  std::string_view media = std::string_view(type).substr(0, end);
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return same_name(media, "application/json");
}

response json(int status, std::string body) {
  return response{status, "application/json", std::move(body), {}};
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

response problem(int status, std::string_view detail, std::string_view title,
                 std::string_view type) {
  nlohmann::ordered_json body{{"type", type},
                              {"title", title.empty() ? reason_phrase(status) : title},
                              {"status", status},
                              {"detail", detail}};
  // A detail that is not valid UTF-8 (echoed input) is replaced, never a throw.
  return response{status,
                  "application/problem+json",
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  {}};
}

}  // namespace jetsource::http
