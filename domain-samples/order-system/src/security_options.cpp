// order-system: the global options that reach a secured NATS server (TLS, credentials). The
// password and the token come only from the environment (NATS_PASSWORD, NATS_TOKEN): a command
// line is visible to every user of the machine (ps, /proc), and neither is ever printed.
#include "cli.hpp"

#include <cstdlib>

namespace order_system::cli {

void add_security_options(CLI::App& app, globals& g) {
  auto* url = app.get_option("--nats-url");
  const std::string group =
      "Secured server (with --nats-url; password and token from the environment only: "
      "NATS_PASSWORD, NATS_TOKEN; docs/security.md)";
  auto file = [&](const char* name, std::string& into, const char* help) {
    return app.add_option(name, into, help)->check(CLI::ExistingFile)->needs(url)->group(group);
  };
  file("--tls-ca", g.tls_ca, "CA certificate(s) (PEM) that sign the server's: turns TLS on");
  auto* cert = file("--tls-cert", g.tls_cert, "client certificate (PEM), for mutual TLS");
  auto* key = file("--tls-key", g.tls_key, "the client certificate's private key (PEM)");
  cert->needs(key);
  key->needs(cert);
  file("--creds", g.creds, "a .creds file (user JWT and nkey seed)");
  app.add_option("--user", g.user, "user name; the password from the environment: NATS_PASSWORD")
      ->needs(url)
      ->group(group);
}

void apply_security_options(const globals& g, jetsource::connection_options& o) {
  if (g.nats_url.empty()) return;  // the embedded server runs on loopback without them
  auto& t = o.tls;
  t.ca_file = g.tls_ca;
  t.cert_file = g.tls_cert;
  t.key_file = g.tls_key;
  t.enabled = !g.tls_ca.empty() || !g.tls_cert.empty();  // a tls:// URL turns it on as well
  o.credentials_file = g.creds;
  o.user = g.user;
  if (const char* pw = std::getenv("NATS_PASSWORD"); pw != nullptr && !g.user.empty())
    o.password = pw;
  if (const char* token = std::getenv("NATS_TOKEN"); token != nullptr) o.token = token;
}

}  // namespace order_system::cli
