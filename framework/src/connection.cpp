// jetsource::connection: the process's one NATS connection over nats.c.
#include <jetsource/connection.hpp>

#include "log.hpp"
#include "nats/caller_reads.hpp"
#include "nats/handles.hpp"
#include "nats/probe.hpp"
#include "nats/reply_inboxes.hpp"

#include <fmt/ranges.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <mutex>

namespace jetsource {
namespace {

// `which`: "" for the connection, " (reads)" for its read connection.
void on_disconnected(natsConnection* nc, void* which) {
  // nats.c also reports a deliberate close here, usually already marked closed (not always:
  // the callback runs on its own thread, so a close can still log this once).
  if (!natsConnection_IsClosed(nc))
    detail::log()->warn("NATS disconnected{}; reconnecting", static_cast<const char*>(which));
}
// At the disconnect's level: whoever sees "disconnected" must also see its end.
// `counter`: jetsource_nats_reconnects_total, or null (the read connection's).
void on_reconnected(natsConnection* nc, void* counter) {
  if (counter != nullptr) static_cast<metrics::counter*>(counter)->inc();
  std::array<char, 256> url{};
  natsConnection_GetConnectedUrl(nc, url.data(), url.size());
  detail::log()->warn("NATS reconnected{} to {}", counter != nullptr ? "" : " (reads)", url.data());
}
void on_closed(natsConnection*, void*) {
  detail::log()->info("NATS connection closed");
}
// `state`: the connection's (it outlives the natsConnection).
void on_error(natsConnection* nc, natsSubscription*, natsStatus s, void* state) {
  const char* text = nullptr;  // the server's words, when the connection's last error is this one
  const bool same = natsConnection_GetLastError(nc, &text) == s;
  std::string what = (same && text != nullptr && *text != '\0') ? text : natsStatus_GetText(s);
  detail::log()->error("NATS asynchronous error: {}", what);
  // nats.c reports a permission violation only here; the request it dropped times out later.
  if (s == NATS_NOT_PERMITTED) {
    auto& c = *static_cast<detail::connection_state*>(state);
    const auto& o = c.options;
    detail::note_permission_violation(
        what, std::max(o.request_timeout, o.connect_timeout) + std::chrono::seconds{1});
    c.refused.note(what);
  }
}

result<void> check(natsStatus s, std::string_view what) {
  if (s == NATS_OK) return success();
  auto e = detail::nats_error(s, what);
  if (e.code == errc::server_error) e.code = errc::invalid_argument;
  return e;
}

// The host of a URL ("tls://user:pw@host:4222" -> "host", "[::1]:4222" -> "::1").
std::string host_of(std::string_view url) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos)
    url.remove_prefix(scheme + 3);
  if (auto at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (url.starts_with('[')) return std::string(url.substr(1, url.find(']') - 1));
  return std::string(url.substr(0, url.find_first_of(":/")));
}

// The hostname all `urls` share, when it is a name (not an IP address); "" otherwise.
std::string shared_hostname(const std::vector<std::string>& urls) {
  std::string host;
  for (const auto& u : urls) {
    auto h = host_of(u);
    if (!host.empty() && h != host) return {};
    host = std::move(h);
  }
  std::array<unsigned char, sizeof(in6_addr)> addr{};
  if (host.empty() || ::inet_pton(AF_INET, host.c_str(), addr.data()) == 1 ||
      ::inet_pton(AF_INET6, host.c_str(), addr.data()) == 1)
    return {};
  return host;
}

constexpr const char* main_label = "";
constexpr const char* reads_label = " (reads)";

// `state`: the connection's state, which the error handler is given; its options are used.
// `reads`: for the read connection (named "<name> (reads)", its reconnects not counted, no
// retrying of its first connect).
result<detail::options_ptr> make_options(detail::connection_state& state, bool reads = false) {
  const connection_options& o = state.options;
  natsOptions* raw = nullptr;
  if (auto s = natsOptions_Create(&raw); s != NATS_OK) return detail::nats_error(s, "nats options");
  detail::options_ptr opts(raw);
  natsOptions* p = opts.get();
  std::vector<const char*> urls;
  for (const auto& u : o.urls) urls.push_back(u.c_str());
  JETSOURCE_TRY(
      check(natsOptions_SetServers(p, urls.data(), static_cast<int>(urls.size())), "server URLs"));
  const std::string name = reads ? o.name + reads_label : o.name;
  JETSOURCE_TRY(check(natsOptions_SetName(p, name.c_str()), "client name"));
  if (!o.token.empty()) {
    JETSOURCE_TRY(check(natsOptions_SetToken(p, o.token.c_str()), "token"));
  }
  if (!o.user.empty()) {
    JETSOURCE_TRY(
        check(natsOptions_SetUserInfo(p, o.user.c_str(), o.password.c_str()), "user/password"));
  }
  if (!o.credentials_file.empty()) {
    JETSOURCE_TRY(
        check(natsOptions_SetUserCredentialsFromFiles(p, o.credentials_file.c_str(), nullptr),
              "credentials file " + o.credentials_file));
  }
  const auto& t = o.tls;
  bool tls_url = false;
  for (const auto& u : o.urls) tls_url = tls_url || u.starts_with("tls://");
  if (t.enabled || tls_url) {
    JETSOURCE_TRY(check(natsOptions_SetSecure(p, true), "TLS"));
  }
  if (!t.ca_file.empty()) {
    JETSOURCE_TRY(check(natsOptions_LoadCATrustedCertificates(p, t.ca_file.c_str()),
                        "TLS CA file " + t.ca_file));
  }
  if (!t.cert_file.empty()) {
    JETSOURCE_TRY(
        check(natsOptions_LoadCertificatesChain(p, t.cert_file.c_str(), t.key_file.c_str()),
              "TLS certificate " + t.cert_file));
  }
  // nats.c checks the server's name only when told which: by default, the URLs' host when
  // they share one that is a name (OpenSSL matches names here, not IP addresses).
  const std::string hostname = !t.expected_hostname.empty()               ? t.expected_hostname
                               : (t.enabled || tls_url) && !t.skip_verify ? shared_hostname(o.urls)
                                                                          : std::string{};
  if (!hostname.empty()) {
    JETSOURCE_TRY(check(natsOptions_SetExpectedHostname(p, hostname.c_str()), "TLS hostname"));
  }
  if (t.skip_verify) {
    JETSOURCE_TRY(check(natsOptions_SkipServerVerification(p, true), "TLS verification"));
  }
  JETSOURCE_TRY(check(natsOptions_SetTimeout(p, o.connect_timeout.count()), "connect timeout"));
  JETSOURCE_TRY(check(natsOptions_SetMaxReconnect(p, o.max_reconnects), "max reconnects"));
  JETSOURCE_TRY(check(natsOptions_SetReconnectWait(p, o.reconnect_wait.count()), "reconnect wait"));
  // The read connection is made once the first is up: if it fails then, heads are read on the
  // first (no retrying: a refusal such as max_connections would block the connect for good).
  if (o.retry_on_failed_connect && !reads) {
    JETSOURCE_TRY(check(natsOptions_SetRetryOnFailedConnect(p, true, nullptr, nullptr),
                        "retry on failed connect"));
  }
  JETSOURCE_TRY(check(natsOptions_SetSendAsap(p, o.send_asap), "send asap"));
  JETSOURCE_TRY(check(natsOptions_SetDisconnectedCB(
                          p, on_disconnected, const_cast<char*>(reads ? reads_label : main_label)),
                      "callbacks"));
  metrics::counter* reconnects = nullptr;
  if (o.metrics != nullptr && !reads)
    reconnects = &o.metrics
                      ->counters("jetsource_nats_reconnects_total",
                                 "Times the NATS connection was re-established after a loss.")
                      .with({});
  JETSOURCE_TRY(check(natsOptions_SetReconnectedCB(p, on_reconnected, reconnects), "callbacks"));
  JETSOURCE_TRY(check(natsOptions_SetClosedCB(p, on_closed, nullptr), "callbacks"));
  JETSOURCE_TRY(check(natsOptions_SetErrorHandler(p, on_error, &state), "callbacks"));
  return opts;
}

bool has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// What a refused TLS handshake or login means, in words (nats.c passes on OpenSSL's and the
// server's texts); "" when the failure was neither. `tls`: TLS options were given.
std::string_view refusal(natsStatus s, std::string_view text, bool tls) {
  if (s == NATS_CONNECTION_AUTH_FAILED || has(text, "Authorization Violation") ||
      has(text, "Authentication"))
    return "authorization violation: the server refused these credentials (user and password, "
           "token or .creds file)";
  if (s == NATS_SECURE_CONNECTION_REQUIRED)
    return "TLS required: the server only accepts TLS (use a tls:// URL or a CA file)";
  if (s == NATS_SECURE_CONNECTION_WANTED)
    return "TLS not offered: TLS was asked for but the server does not offer it";
  // With TLS 1.3 the client's side of the handshake is over before the server has checked the
  // client's certificate: a refusal then shows as the connection closing before the PONG (or
  // under the CONNECT being written).
  if (tls &&
      ((s == NATS_PROTOCOL_ERROR && has(text, "Expected 'PONG', got ''")) ||
       (s == NATS_IO_ERROR && (has(text, "SSL_write error") || has(text, "SSL_read error")))))
    return "TLS: the server closed the connection after the handshake: it refused this client's "
           "certificate (missing, not signed by a CA it trusts, or expired)";
  if (s != NATS_SSL_ERROR) return {};
  if (has(text, "hostname mismatch"))
    return "TLS hostname mismatch: the server's certificate is not for the expected hostname";
  if (has(text, "alert"))  // the server sent a TLS alert: it refused our certificate
    return "TLS: the server sent an alert: it refused this client's certificate (missing, not "
           "signed by a CA it trusts, or expired)";
  if (has(text, "expired") || has(text, "not yet valid"))
    return "TLS certificate expired: the server's certificate is outside its validity period";
  if (has(text, "issuer") || has(text, "self-signed") || has(text, "self signed") ||
      has(text, "verify") || has(text, "unable to get"))
    return "TLS certificate not trusted: the server's certificate is not signed by a trusted CA";
  return "TLS handshake failed";
}

// A connect that failed: when something listens at a URL but is not a NATS server (nats.c only
// says "Timeout" or "Protocol Error"), says so. Costs at most a short probe per URL.
error connect_error(natsStatus s, const connection_options& o) {
  auto e = detail::nats_error(s, fmt::format("connect to {}", fmt::join(o.urls, ",")));
  if (e.code == errc::server_error) e.code = errc::unreachable;
  bool tls = o.tls.enabled || !o.tls.ca_file.empty() || !o.tls.cert_file.empty();
  for (const auto& u : o.urls) tls = tls || u.starts_with("tls://");
  if (auto why = refusal(s, e.message, tls); !why.empty()) {
    e.message = fmt::format("{}: {}", why, e.message);
    return e;
  }
  if (s == NATS_NOT_PERMITTED) return e;
  const auto probe = std::min(o.connect_timeout, std::chrono::milliseconds{250});
  for (const auto& url : o.urls)
    if (auto why = detail::not_a_nats_server(url, probe, o.connect_timeout)) {
      e.code = errc::unreachable;
      e.message += "; " + *why;
    }
  return e;
}

// The read connection (caller_reads.hpp), or, when it cannot be made, nothing: heads are then
// read on the connection itself.
void open_read_connection(detail::connection_state& state) {
  auto reads = std::make_unique<detail::caller_reads>();
  auto opts = make_options(state, true);
  natsStatus s = opts ? reads->install(opts->get()) : NATS_ERR;
  natsConnection* rc = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&rc, opts->get());
  if (s != NATS_OK) {
    detail::log()->warn("no separate read connection ({}): heads are read on the connection",
                        opts ? detail::nats_error(s, "connect").message : opts.error().message);
    return;
  }
  state.reads_nc.reset(rc);
  reads->start(rc);
  state.replies = std::make_unique<detail::reply_inboxes>(rc, reads.get());
  state.reads = std::move(reads);
  state.reads_opts = std::move(opts).value();
}

}  // namespace

result<connection> connection::connect(const connection_options& options) {
  // nats.c spins on its locks by default; with few cores the spinning thread steals the CPU the
  // lock holder needs (measured: +15-20% commands/s on 2 cores with spinning off). This only
  // takes effect when nothing in the process has used nats.c yet.
  static std::once_flag opened;
  std::call_once(opened, [] { (void)nats_Open(0); });
  if (options.urls.empty())
    return make_error(errc::invalid_argument,
                      "no server URL given (use runtime::open to embed one)");
  auto state = std::make_shared<detail::connection_state>();
  state->options = options;
  JETSOURCE_TRY(opts, make_options(*state));  // the error handler keeps a pointer
  state->opts = std::move(opts);
  natsConnection* nc = nullptr;
  if (auto s = natsConnection_Connect(&nc, state->opts.get()); s != NATS_OK)
    return connect_error(s, options);
  state->nc.reset(nc);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options.request_timeout.count();
  jsCtx* js = nullptr;
  if (auto s = natsConnection_JetStream(&js, nc, &jo); s != NATS_OK)
    return detail::nats_error(s, "JetStream context");
  state->js.reset(js);
  if (options.separate_read_connection) open_read_connection(*state);
  if (!state->replies) state->replies = std::make_unique<detail::reply_inboxes>(nc);
  detail::log()->debug("connected to {}", connection(state).connected_url());
  return connection(std::move(state));
}

std::string connection::connected_url() const {
  std::array<char, 512> buf{};
  if (natsConnection_GetConnectedUrl(state_->nc.get(), buf.data(), buf.size()) != NATS_OK)
    return {};
  return buf.data();
}

std::int64_t connection::max_payload() const {
  return natsConnection_GetMaxPayload(state_->nc.get());
}

bool connection::connected() const {
  return natsConnection_Status(state_->nc.get()) == NATS_CONN_STATUS_CONNECTED;
}

const connection_options& connection::options() const {
  return state_->options;
}

}  // namespace jetsource
