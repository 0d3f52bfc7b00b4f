// Test support: a small PKI made at test time with the openssl command (EC P-256 keys, PEM):
// a CA, a server certificate for 127.0.0.1 / localhost, a client certificate, an expired server
// and client certificate, and a second CA with a server and a client certificate of its own.
#pragma once

#include "nats_fixture.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace jetsource::test {

/// A certificate and its key.
struct key_pair {
  std::filesystem::path cert, key;
};

/// Everything made in `dir` (which must exist); `ok` false (with a test failure) when openssl
/// failed, its output in dir/openssl.log.
struct test_pki {
  std::filesystem::path ca;        ///< the trusted CA's certificate
  key_pair server;                 ///< signed by ca; SAN IP:127.0.0.1, DNS:localhost
  key_pair ip_only_server;         ///< signed by ca; SAN IP:127.0.0.1 only (not "localhost")
  key_pair client;                 ///< signed by ca; clientAuth
  key_pair expired_server;         ///< signed by ca, SANs as server; expired yesterday
  key_pair expired_client;         ///< signed by ca; expired yesterday
  std::filesystem::path other_ca;  ///< a CA nobody trusts
  key_pair other_server;           ///< signed by other_ca; SANs as server
  key_pair other_client;           ///< signed by other_ca
  bool ok = false;

  explicit test_pki(const std::filesystem::path& dir) : dir_(dir) {
    ok = make_ca("ca", "jetsource test CA") && make_ca("other-ca", "another CA") &&
         sign("server", "ca", "server", 2) && sign("ip-only-server", "ca", "ip-server", 2) &&
         sign("client", "ca", "client", 2) && sign("expired-server", "ca", "server", -1) &&
         sign("expired-client", "ca", "client", -1) &&
         sign("other-server", "other-ca", "server", 2) &&
         sign("other-client", "other-ca", "client", 2);
    ca = dir / "ca.pem";
    other_ca = dir / "other-ca.pem";
    server = pair("server");
    ip_only_server = pair("ip-only-server");
    client = pair("client");
    expired_server = pair("expired-server");
    expired_client = pair("expired-client");
    other_server = pair("other-server");
    other_client = pair("other-client");
    EXPECT_TRUE(ok) << "openssl failed; see " << (dir / "openssl.log");
  }

 private:
  key_pair pair(const std::string& name) const {
    return {dir_ / (name + ".pem"), dir_ / (name + ".key")};
  }
  bool openssl(const std::string& args) const {
    const std::string log = (dir_ / "openssl.log").string();
    return std::system(("cd '" + dir_.string() + "' && openssl " + args + " >> '" + log + "' 2>&1")
                           .c_str()) == 0;
  }
  static std::string new_key() { return "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"; }
  bool make_ca(const std::string& name, const std::string& cn) const {
    return openssl("req -x509 " + new_key() + " -keyout " + name + ".key -out " + name +
                   ".pem -days 2 -subj '/CN=" + cn + "'");
  }
  // A certificate for `role` (server: SANs for loopback; ip-server: the IP only; client) valid
  // for `days` (-1: expired).
  bool sign(const std::string& name, const std::string& ca_name, const std::string& role,
            int days) const {
    std::ofstream(dir_ / (name + ".ext"))
        << (role == "server"      ? "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "extendedKeyUsage=serverAuth\n"
            : role == "ip-server" ? "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                                  : "extendedKeyUsage=clientAuth\n");
    return openssl("req " + new_key() + " -keyout " + name + ".key -out " + name +
                   ".csr -subj '/CN=jetsource test " + name + "'") &&
           openssl("x509 -req -in " + name + ".csr -CA " + ca_name + ".pem -CAkey " + ca_name +
                   ".key -CAcreateserial -out " + name + ".pem -days " + std::to_string(days) +
                   " -extfile " + name + ".ext");
  }

  std::filesystem::path dir_;
};

/// One PKI per test process, made on first use (openssl takes a moment per key).
inline test_pki& shared_pki() {
  static temp_dir dir;
  static test_pki pki(dir.path());
  return pki;
}

/// A nats-server config block requiring TLS with `cert`; with `client_ca`, clients must show a
/// certificate signed by it (mutual TLS).
inline std::string tls_server_config(const key_pair& cert,
                                     const std::filesystem::path& client_ca = {}) {
  std::string c = "tls {\n  cert_file: \"" + cert.cert.string() + "\"\n  key_file: \"" +
                  cert.key.string() + "\"\n  timeout: 2\n";
  if (!client_ca.empty()) c += "  ca_file: \"" + client_ca.string() + "\"\n  verify: true\n";
  return c + "}\n";
}

}  // namespace jetsource::test
