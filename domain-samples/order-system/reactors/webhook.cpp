// The webhook client (webhook.hpp): one cpp-httplib client per call, so calls from several
// worker threads never share a connection.
#include <order_system/webhook.hpp>

#include <httplib.h>

#include <fmt/format.h>

namespace order_system {

jetsource::result<webhook> webhook::make(webhook_options o) {
  const std::string_view url = o.url;
  auto bad = [&](std::string_view why) {
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "webhook URL '{}': {} (expected http://HOST[:PORT][/PATH])", url,
                                 why);
  };
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("no scheme");
  auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("the scheme is not http or https");
  auto host_end = url.find('/', scheme_end + 3);
  auto base = std::string(url.substr(0, host_end));
  if (base.size() == scheme_end + 3) return bad("no host");
  if (base.find_first_of(" \t\r\n?#") != std::string::npos) return bad("a bad character");
  std::string path = host_end == std::string_view::npos ? "/" : std::string(url.substr(host_end));
  if (path.find_first_of(" \t\r\n") != std::string::npos) return bad("a blank in the path");
  if (o.connect_timeout.count() <= 0 || o.timeout.count() <= 0)
    return jetsource::make_error(jetsource::errc::invalid_argument,
                                 "webhook timeouts must be positive");
  return webhook(std::move(o), std::move(base), std::move(path));
}

jetsource::result<void> webhook::post(std::string_view json,
                                      std::string_view idempotency_key) const {
  httplib::Client client(base_);
  if (!client.is_valid())
    return jetsource::make_error(jetsource::errc::invalid_argument, "webhook {}: unusable URL",
                                 o_.url);
  client.set_connection_timeout(o_.connect_timeout);
  client.set_read_timeout(o_.timeout);
  client.set_write_timeout(o_.timeout);
  client.set_keep_alive(false);
  httplib::Headers headers{{"Idempotency-Key", std::string(idempotency_key)}};
  auto res = client.Post(path_, headers, std::string(json), "application/json");
  if (!res) {
    auto err = res.error();
    auto code = jetsource::errc::io;
    if (err == httplib::Error::Read || err == httplib::Error::ConnectionTimeout)
      code = jetsource::errc::timeout;
    else if (err == httplib::Error::Connection)
      code = jetsource::errc::unreachable;
    return jetsource::make_error(code, "webhook {}: {}", o_.url, httplib::to_string(err));
  }
  if (res->status < 200 || res->status > 299)
    return jetsource::make_error(jetsource::errc::server_error, "webhook {}: answered {}", o_.url,
                                 res->status);
  return jetsource::success();
}

}  // namespace order_system
