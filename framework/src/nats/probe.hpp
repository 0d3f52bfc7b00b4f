// detail: what listens at a server URL that nats.c could not connect to. A NATS server sends its
// INFO line as soon as it accepts a connection; anything else there (an HTTP server, a silent
// port) is named as "no NATS server" instead of nats.c's bare "Timeout".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource::detail {

/// Connects to the URL's host and port and reads what it sends first, for at most `timeout`.
/// A sentence when something listens there that is not a NATS server ("no NATS server at URL
/// (...)"); nullopt when nothing listens, the URL is not host:port, or it sent a NATS INFO line.
/// `waited` is how long the caller already waited for the INFO line (said in the sentence).
std::optional<std::string> not_a_nats_server(const std::string& url,
                                             std::chrono::milliseconds timeout,
                                             std::chrono::milliseconds waited);

/// What a server says about itself in its INFO line.
struct server_identity {
  std::string url;      ///< where it was reached
  std::string name;     ///< server_name
  std::string version;  ///< e.g. "2.9.10"
};

/// The INFO line of the server at each URL (read over a plain TCP connection before CONNECT:
/// nats.c 3.4.1 has no getter for it), and of the other cluster members it names in
/// connect_urls. Servers that do not answer within `timeout` are left out.
std::vector<server_identity> server_identities(const std::vector<std::string>& urls,
                                               std::chrono::milliseconds timeout);

/// Whether version a.b.c is at least major.minor.patch ("" or unparseable: false).
bool version_at_least(std::string_view version, int major, int minor, int patch);

}  // namespace jetsource::detail
