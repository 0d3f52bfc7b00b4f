// A webhook client: POSTs a JSON body with an Idempotency-Key header to one URL, with connect
// and read timeouts (the notification reactor's way out; cpp-httplib inside, ADR 0013).
//
// Thread-safety: a webhook is immutable once made; post() may be called from many threads at
// once (each call opens its own connection).
//
//   auto hook = order_system::webhook::make({.url = "http://127.0.0.1:8080/hooks/orders"});
//   JETSOURCE_TRY(hook->post(R"({"event":"OrderPlaced"})", "notifications:Order:o-1:4"));
#pragma once

#include <jetsource/result.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace order_system {

struct webhook_options {
  std::string url;  ///< http://HOST[:PORT][/PATH] or https://...
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{5000};  ///< for the answer (read) and for sending (write)
};

class webhook {
 public:
  /// errc::invalid_argument for a URL that is not http(s)://HOST[:PORT][/PATH].
  static jetsource::result<webhook> make(webhook_options o);

  /// POSTs `json` (Content-Type application/json) with `Idempotency-Key: <key>`. A 2xx answer
  /// is success; another status is errc::server_error, no answer in time errc::timeout, no
  /// connection errc::unreachable (each: the caller retries later with the same key).
  jetsource::result<void> post(std::string_view json, std::string_view idempotency_key) const;

  const std::string& url() const noexcept { return o_.url; }

 private:
  webhook(webhook_options o, std::string base, std::string path)
      : o_(std::move(o)), base_(std::move(base)), path_(std::move(path)) {}
  webhook_options o_;
  std::string base_;  ///< scheme://host:port
  std::string path_;  ///< "/" when the URL has none
};

}  // namespace order_system
