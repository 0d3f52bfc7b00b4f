// The process's one NATS connection: options (URLs, credentials, TLS), reconnects, logging.
//
// Thread-safety: a connection is safe to share between threads; create ONE per process and pass
// it to every event_store (never a pool: one TCP connection keeps each aggregate's commits in
// order; reads of aggregates' heads use a second one, connection_options::
// separate_read_connection). Reconnects are handled by the client and logged through spdlog
// ("jetsource" logger).
//
// clang-format off
//   jetsource::connection_options o;
//   o.urls = {"nats://10.0.0.1:4222", "nats://10.0.0.2:4222"};
//   auto conn = jetsource::connection::connect(o);
//   if (!conn) { spdlog::error("{}", conn.error()); return 1; }
// clang-format on
#pragma once

#include <jetsource/metrics.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jetsource {

/// TLS settings, passed through to nats.c.
struct tls_options {
  bool enabled = false;   ///< require TLS (implied by a tls:// URL)
  std::string ca_file;    ///< trusted CA certificates (PEM)
  std::string cert_file;  ///< client certificate (PEM), for mutual TLS
  std::string key_file;   ///< client key (PEM)
  /// hostname the server's certificate must name; default: the URLs' host when they share one
  /// that is a name (with IP-address URLs, only the CA chain is checked unless this is set)
  std::string expected_hostname;
  bool skip_verify = false;  ///< do not verify the server certificate (tests only)
};

/// How to reach the server(s). Credentials are passed through to nats.c.
struct connection_options {
  std::vector<std::string> urls;   ///< one, or several for a cluster; e.g. nats://127.0.0.1:4222
  std::string name = "jetsource";  ///< client name shown by the server
  std::string token;               ///< token authentication
  std::string user, password;      ///< user/password authentication
  std::string credentials_file;    ///< a .creds file (JWT + nkey seed)
  tls_options tls;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};  ///< JetStream API and publish ack wait
  int max_reconnects = -1;                          ///< -1: forever
  std::chrono::milliseconds reconnect_wait{250};
  /// keep trying in the background if the first connect fails
  bool retry_on_failed_connect = false;
  bool send_asap = true;  ///< flush each publish at once (nats.c otherwise batches ~1 ms)
  /// Read aggregates' heads (cold loads) on a second TCP connection whose socket the loading
  /// thread reads itself: no thread hand-off per load (7–30 % of a direct get's round trip
  /// on the 2-core test machine; docs/performance.md). Publishes stay on the one connection. If the
  /// second connection cannot be made, heads are read on the first (logged). false: one
  /// connection only (a server that counts connections tightly).
  bool separate_read_connection = true;
  /// where jetsource_nats_reconnects_total is counted; nullptr: nowhere
  metrics::registry* metrics = &metrics::default_registry();
};

namespace detail {
struct connection_state;
}

/// One NATS connection with its JetStream context. The first connect initialises nats.c with
/// lock spinning off (faster on small machines); call nats_Open yourself first to choose
/// otherwise.
class connection {
 public:
  /// Connects; errc::unreachable when no server answers.
  static result<connection> connect(const connection_options& options);

  /// The URL of the server currently connected to ("" while disconnected).
  std::string connected_url() const;
  /// The server's max payload in bytes (the largest commit it accepts).
  std::int64_t max_payload() const;
  /// True while connected (false while reconnecting or after close).
  bool connected() const;
  /// The options this connection was made with.
  const connection_options& options() const;

  // Not API: the library's own code reaches the state through its internal target
  // (detail::state_of); its type is not defined in any public header.
 protected:
  std::shared_ptr<detail::connection_state> state_;

 private:
  explicit connection(std::shared_ptr<detail::connection_state> s) : state_(std::move(s)) {}
};

}  // namespace jetsource
