// TLS and authentication end to end (issue 15 §1): nats-server started with TLS from
// certificates made at test time (tests/support/tls_certs.hpp), reached through the library and
// through the order-system binary. Each refusal is checked for a message that says which
// (certificate not trusted, expired, hostname mismatch, authorization violation) and for coming
// within the connect timeout.
#include <jetsource/connection.hpp>
#include <jetsource/repository.hpp>

#include "configured_server.hpp"
#include "nats_creds.hpp"
#include "test_domain.hpp"
#include "tls_certs.hpp"

#include <chrono>
#include <memory>

using jetsource::errc;
using jetsource::test::configured_server;
using jetsource::test::key_pair;
using jetsource::test::temp_dir;
using jetsource::test::test_pki;
using namespace std::chrono_literals;

namespace {

test_pki& pki() {
  return jetsource::test::shared_pki();
}

std::string tls_config(const key_pair& cert, bool verify = false) {
  return jetsource::test::tls_server_config(cert, verify ? pki().ca : std::filesystem::path{});
}

jetsource::connection_options tls_client(const configured_server& s,
                                         const key_pair* cert = nullptr) {
  jetsource::connection_options o;
  o.urls = {s.url("tls")};
  o.tls.ca_file = pki().ca.string();
  if (cert != nullptr) {
    o.tls.cert_file = cert->cert.string();
    o.tls.key_file = cert->key.string();
  }
  o.connect_timeout = 2000ms;
  return o;
}

// Connects, expecting a refusal (errc::unreachable) within the connect timeout and a message
// containing `says`.
void expect_refused(const jetsource::connection_options& o, const std::string& says) {
  auto start = std::chrono::steady_clock::now();
  auto c = jetsource::connection::connect(o);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c) << "connected, expected: " << says;
  EXPECT_TRUE(c.error().is(errc::unreachable)) << c.error();
  EXPECT_NE(c.error().message.find(says), std::string::npos) << c.error();
  EXPECT_LT(took, o.connect_timeout + 1s) << c.error();
}

// Appends and reads back one commit: JetStream works over this connection.
void expect_store_works(const jetsource::connection& conn) {
  auto store = jetsource::event_store::open(conn, {.stream = "TLS", .subject_prefix = "tls"});
  ASSERT_TRUE(store) << store.error();
  jetsource::repository<bank::account> accounts{*store};
  auto r = accounts.execute("acc-1", bank::open_account{"ada", 100});
  ASSERT_TRUE(r) << r.error();
  auto l = accounts.load("acc-1");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->state.balance_cents(), 100);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki().ok); }
};

TEST_F(TlsTest, ServerVerifiedTlsCarriesTheEventStore) {
  configured_server s(tls_config(pki().server));
  ASSERT_TRUE(s.server);
  auto c = jetsource::connection::connect(tls_client(s));
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->connected_url(), s.url("tls"));
  expect_store_works(*c);

  // A nats:// URL with a CA file and TLS enabled is the same connection.
  auto o = tls_client(s);
  o.urls = {s.url("nats")};
  o.tls.enabled = true;
  auto plain_url = jetsource::connection::connect(o);
  ASSERT_TRUE(plain_url) << plain_url.error();
}

TEST_F(TlsTest, AClientWithoutTheCaDoesNotTrustTheServer) {
  configured_server s(tls_config(pki().server));
  ASSERT_TRUE(s.server);
  jetsource::connection_options o;  // nats.c upgrades to TLS; the system's CAs do not know ours
  o.urls = {s.url("nats")};
  expect_refused(o, "TLS certificate not trusted");
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateOfTheTrustedCa) {
  configured_server s(tls_config(pki().server, /*verify=*/true));
  ASSERT_TRUE(s.server);
  auto c = jetsource::connection::connect(tls_client(s, &pki().client));
  ASSERT_TRUE(c) << c.error();
  expect_store_works(*c);

  const std::string refused = "it refused this client's certificate";
  expect_refused(tls_client(s), refused);                       // no client certificate
  expect_refused(tls_client(s, &pki().other_client), refused);  // signed by another CA
  expect_refused(tls_client(s, &pki().expired_client), refused);
}

TEST_F(TlsTest, AServerCertificateOfAnotherCaIsNotTrusted) {
  configured_server s(tls_config(pki().other_server));
  ASSERT_TRUE(s.server);
  expect_refused(tls_client(s), "TLS certificate not trusted");
}

TEST_F(TlsTest, AnExpiredServerCertificateIsRefused) {
  configured_server s(tls_config(pki().expired_server));
  ASSERT_TRUE(s.server);
  expect_refused(tls_client(s), "TLS certificate expired");
}

TEST_F(TlsTest, ExpectedHostnameMustMatchTheCertificate) {
  configured_server s(tls_config(pki().server));  // SAN DNS:localhost, IP:127.0.0.1
  ASSERT_TRUE(s.server);
  auto o = tls_client(s);
  o.tls.expected_hostname = "localhost";
  auto c = jetsource::connection::connect(o);
  ASSERT_TRUE(c) << c.error();

  o.tls.expected_hostname = "orders.example.com";
  expect_refused(o, "TLS hostname mismatch");
}

TEST_F(TlsTest, TheUrlsHostnameIsVerifiedByDefault) {
  configured_server s(tls_config(pki().server));
  ASSERT_TRUE(s.server);
  auto o = tls_client(s);
  o.urls = {"tls://localhost:" + std::to_string(s.server->port())};
  auto c = jetsource::connection::connect(o);
  ASSERT_TRUE(c) << c.error();

  // The IP-only certificate (SAN IP:127.0.0.1) is not for the name "localhost".
  configured_server ip_only(tls_config(pki().ip_only_server));
  ASSERT_TRUE(ip_only.server);
  o.urls = {"tls://localhost:" + std::to_string(ip_only.server->port())};
  expect_refused(o, "TLS hostname mismatch");
}

TEST(AuthTest, WrongCredentialsSayAuthorizationViolation) {
  configured_server s("authorization {\n  users = [ {user: ada, password: s3cret} ]\n}\n");
  ASSERT_TRUE(s.server);
  jetsource::connection_options o{.urls = {s.url()}, .user = "ada", .password = "wrong"};
  expect_refused(o, "authorization violation");
  o.password = "s3cret";
  auto c = jetsource::connection::connect(o);
  ASSERT_TRUE(c) << c.error();
  expect_store_works(*c);

  configured_server t("authorization {\n  token: \"t0ken\"\n}\n");
  ASSERT_TRUE(t.server);
  expect_refused({.urls = {t.url()}, .token = "nope"}, "authorization violation");
  expect_refused({.urls = {t.url()}}, "authorization violation");
  EXPECT_TRUE(jetsource::connection::connect({.urls = {t.url()}, .token = "t0ken"}));
}

TEST(AuthTest, ACredsFileOfTheTrustedOperatorsAccountConnects) {
  jetsource::test::test_creds creds;
  configured_server s(creds.server_config());
  ASSERT_TRUE(s.server);
  const auto good = s.dir.path() / "user.creds";
  creds.write_creds(good);
  auto c = jetsource::connection::connect({.urls = {s.url()}, .credentials_file = good.string()});
  ASSERT_TRUE(c) << c.error();
  expect_store_works(*c);

  // The JWT with a seed that is not its user's: the server's nonce signature does not verify.
  const auto forged = s.dir.path() / "forged.creds";
  auto other = jetsource::test::nkey::user();
  creds.write_creds(forged, &other);
  expect_refused({.urls = {s.url()}, .credentials_file = forged.string()},
                 "authorization violation");
  // A user of an account the server does not know (another operator's).
  jetsource::test::test_creds stranger;
  const auto foreign = s.dir.path() / "foreign.creds";
  stranger.write_creds(foreign);
  expect_refused({.urls = {s.url()}, .credentials_file = foreign.string()},
                 "authorization violation");
}

}  // namespace
