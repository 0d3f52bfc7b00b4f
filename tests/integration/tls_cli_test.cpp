// order-system against a secured nats-server (issue 15 §1): the global options --tls-ca,
// --tls-cert, --tls-key, --user, --creds, and NATS_PASSWORD / NATS_TOKEN from the environment
// only. A refusal is exit 1 with a message saying which, within the connect timeout; a password
// is never printed.
#include "configured_server.hpp"
#include "nats_creds.hpp"
#include "order_cli_fixture.hpp"
#include "tls_certs.hpp"

#include <chrono>

using jetsource::test::configured_server;
using jetsource::test::outcome;
using jetsource::test::shared_pki;
using jetsource::test::tls_server_config;
using namespace std::chrono_literals;

namespace {

class SecuredCliTest : public jetsource::test::order_cli_test {
 protected:
  void SetUp() override {
    order_cli_test::SetUp();
    ASSERT_TRUE(shared_pki().ok);
  }

  // `order create` against `url` with these global options; also how long it took.
  outcome create(const std::string& url, std::vector<std::string> args) {
    args.insert(args.end(), {"order", "create", "--customer", "c-1", "--item", "widget:1:100"});
    auto start = std::chrono::steady_clock::now();
    auto r = wait(spawn(args, url));
    took_ = std::chrono::steady_clock::now() - start;
    return r;
  }
  // Exit 1, saying `says`, well within the connect timeout (2 s) plus the process's start-up.
  void expect_refused(const outcome& r, const std::string& says) {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_LT(took_, 2s + 3s) << r.err;
  }
  std::vector<std::string> ca() const { return {"--tls-ca", shared_pki().ca.string()}; }
  std::vector<std::string> mutual() const {
    return {"--tls-ca",   shared_pki().ca.string(),
            "--tls-cert", shared_pki().client.cert.string(),
            "--tls-key",  shared_pki().client.key.string()};
  }

  std::chrono::steady_clock::duration took_{};
};

TEST_F(SecuredCliTest, TlsCaReachesATlsServerByTlsOrNatsUrl) {
  configured_server s(tls_server_config(shared_pki().server));
  ASSERT_TRUE(s.server);
  auto r = create(s.url("tls"), ca());
  EXPECT_EQ(r.code, 0) << r.err;
  r = create(s.url("nats"), ca());
  EXPECT_EQ(r.code, 0) << r.err;
  r = create(s.url("nats"), {});  // upgraded to TLS, checked against the system's CAs
  expect_refused(r, "TLS certificate not trusted");
}

TEST_F(SecuredCliTest, MutualTlsWithTheClientCertificate) {
  configured_server s(tls_server_config(shared_pki().server, shared_pki().ca));
  ASSERT_TRUE(s.server);
  auto r = create(s.url("tls"), mutual());
  EXPECT_EQ(r.code, 0) << r.err;
  expect_refused(create(s.url("tls"), ca()), "it refused this client's certificate");
}

TEST_F(SecuredCliTest, RefusalsSayWhichTlsCheckFailed) {
  configured_server other(tls_server_config(shared_pki().other_server));
  configured_server expired(tls_server_config(shared_pki().expired_server));
  configured_server ip_only(tls_server_config(shared_pki().ip_only_server));
  ASSERT_TRUE(other.server && expired.server && ip_only.server);
  expect_refused(create(other.url("tls"), ca()), "TLS certificate not trusted");
  expect_refused(create(expired.url("tls"), ca()), "TLS certificate expired");
  auto by_name = "tls://localhost:" + std::to_string(ip_only.server->port());
  expect_refused(create(by_name, ca()), "TLS hostname mismatch");
}

TEST_F(SecuredCliTest, PasswordAndTokenComeFromTheEnvironmentAndAreNeverPrinted) {
  configured_server s("authorization {\n  users = [ {user: ada, password: \"pw-right-1\"} ]\n}\n");
  configured_server t("authorization {\n  token: \"tok-right-1\"\n}\n");
  ASSERT_TRUE(s.server && t.server);

  extra_env_ = {"NATS_PASSWORD=pw-right-1"};
  auto r = create(s.url(), {"--user", "ada", "-v"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("pw-right-1"), std::string::npos) << r.err;

  extra_env_ = {"NATS_PASSWORD=pw-wrong-2"};
  r = create(s.url(), {"--user", "ada", "-v"});
  expect_refused(r, "authorization violation");
  EXPECT_EQ(r.err.find("pw-wrong-2"), std::string::npos) << r.err;

  extra_env_ = {"NATS_TOKEN=tok-right-1"};
  r = create(t.url(), {"-v"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("tok-right-1"), std::string::npos) << r.err;
  extra_env_ = {"NATS_TOKEN=tok-wrong-2"};
  r = create(t.url(), {});
  expect_refused(r, "authorization violation");
  EXPECT_EQ(r.err.find("tok-wrong-2"), std::string::npos) << r.err;
}

TEST_F(SecuredCliTest, CredsFile) {
  jetsource::test::test_creds creds;
  configured_server s(creds.server_config());
  ASSERT_TRUE(s.server);
  const auto good = s.dir.path() / "user.creds";
  creds.write_creds(good);
  auto r = create(s.url(), {"--creds", good.string()});
  EXPECT_EQ(r.code, 0) << r.err;

  const auto forged = s.dir.path() / "forged.creds";
  auto other = jetsource::test::nkey::user();
  creds.write_creds(forged, &other);
  expect_refused(create(s.url(), {"--creds", forged.string()}), "authorization violation");
}

TEST_F(SecuredCliTest, SecretsAndOptionsOutsideTheContractAreUsageErrors) {
  for (std::vector<std::string> args : {
           std::vector<std::string>{"--password", "x"},  // never on the command line
           {"--token", "x"},
           {"--tls-ca", "/nonexistent/ca.pem"},                // a missing file
           {"--tls-cert", shared_pki().client.cert.string()},  // without its key
       }) {
    auto r = create(server_->url(), args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.err;
  }
  // Without --nats-url (the embedded server) the TLS and credential options make no sense.
  auto r = wait(spawn({"--tls-ca", shared_pki().ca.string(), "order", "create", "--customer", "c-1",
                       "--item", "widget:1:100"},
                      ""));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--nats-url"), std::string::npos) << r.err;
}

}  // namespace
