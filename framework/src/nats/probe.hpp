// detail: what listens at a server URL that nats.c could not connect to. A NATS server sends its
// INFO line as soon as it accepts a connection; anything else there (an HTTP server, a silent
// port) is named as "no NATS server" instead of nats.c's bare "Timeout".
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace jetsource::detail {

/// Connects to the URL's host and port and reads what it sends first, for at most `timeout`.
/// A sentence when something listens there that is not a NATS server ("no NATS server at URL
/// (...)"); nullopt when nothing listens, the URL is not host:port, or it sent a NATS INFO line.
/// `waited` is how long the caller already waited for the INFO line (said in the sentence).
std::optional<std::string> not_a_nats_server(const std::string& url,
                                             std::chrono::milliseconds timeout,
                                             std::chrono::milliseconds waited);

}  // namespace jetsource::detail
