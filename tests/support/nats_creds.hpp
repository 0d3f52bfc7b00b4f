// Test support: decentralised NATS authentication made at test time without nsc (not packaged
// by Debian): nkeys (Ed25519 through OpenSSL's libcrypto, encoded as the nkeys library does:
// prefix byte, key, CRC-16/XMODEM, base32) and JWTs (header.claims.signature, base64url, signed
// with the issuer's key). An operator signs an account, the account signs a user; the server
// trusts the operator and preloads the account (resolver: MEMORY); the client gets a .creds file.
#pragma once

#include <nlohmann/json.hpp>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace jetsource::test {

namespace detail_creds {

inline std::uint16_t crc16(const std::vector<unsigned char>& data) {
  std::uint16_t crc = 0;  // CRC-16/XMODEM: poly 0x1021, init 0
  for (unsigned char b : data) {
    crc ^= static_cast<std::uint16_t>(b << 8);
    for (int i = 0; i < 8; ++i)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

inline std::string base32(const std::vector<unsigned char>& data) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned char b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

inline std::string base64url(const std::string& data) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned char b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 6) {
      out += alphabet[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += alphabet[(buffer << (6 - bits)) & 63];
  return out;
}

// prefix bytes of the nkeys library: 'O' operator, 'A' account, 'U' user; 'S' seed
constexpr unsigned char prefix_operator = 14 << 3, prefix_account = 0, prefix_user = 20 << 3,
                        prefix_seed = 18 << 3;

inline std::string encode(std::vector<unsigned char> raw) {
  auto crc = crc16(raw);
  raw.push_back(static_cast<unsigned char>(crc & 0xff));
  raw.push_back(static_cast<unsigned char>(crc >> 8));
  return base32(raw);
}

}  // namespace detail_creds

/// An Ed25519 nkey of one type (operator, account or user).
class nkey {
 public:
  explicit nkey(unsigned char type) : type_(type) {
    RAND_bytes(seed_.data(), static_cast<int>(seed_.size()));
    key_.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed_.data(), 32));
  }
  static nkey op() { return nkey(detail_creds::prefix_operator); }
  static nkey account() { return nkey(detail_creds::prefix_account); }
  static nkey user() { return nkey(detail_creds::prefix_user); }

  /// "O...", "A...", "U...": the public key as nkeys prints it
  std::string public_key() const {
    std::vector<unsigned char> raw{type_};
    std::array<unsigned char, 32> pub{};
    std::size_t len = pub.size();
    EVP_PKEY_get_raw_public_key(key_.get(), pub.data(), &len);
    raw.insert(raw.end(), pub.begin(), pub.end());
    return detail_creds::encode(raw);
  }
  /// "SO...", "SA...", "SU...": the seed
  std::string seed() const {
    std::vector<unsigned char> raw{
        static_cast<unsigned char>(detail_creds::prefix_seed | (type_ >> 5)),
        static_cast<unsigned char>((type_ & 31) << 3)};
    raw.insert(raw.end(), seed_.begin(), seed_.end());
    return detail_creds::encode(raw);
  }
  std::string sign(const std::string& data) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::string sig(64, '\0');
    std::size_t len = sig.size();
    EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get());
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    return sig;
  }
  /// A JWT for `subject` with these "nats" claims, issued (signed) by this key.
  std::string issue(const std::string& subject, const std::string& name,
                    nlohmann::json nats) const {
    nats["version"] = 2;
    nlohmann::json claims = {{"jti", subject.substr(0, 20) + std::to_string(std::rand())},
                             {"iat", static_cast<std::int64_t>(std::time(nullptr))},
                             {"iss", public_key()},
                             {"name", name},
                             {"sub", subject},
                             {"nats", std::move(nats)}};
    const std::string head = detail_creds::base64url(R"({"typ":"JWT","alg":"ed25519-nkey"})");
    const std::string body = head + "." + detail_creds::base64url(claims.dump());
    return body + "." + detail_creds::base64url(sign(body));
  }

 private:
  unsigned char type_;
  std::array<unsigned char, 32> seed_{};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_{nullptr, EVP_PKEY_free};
};

/// An operator, one account with JetStream, one user of it: the server's config lines and the
/// user's .creds file.
struct test_creds {
  nkey op = nkey::op(), sys = nkey::account(), acct = nkey::account(), user = nkey::user();
  std::string operator_jwt, system_jwt, account_jwt, user_jwt;

  test_creds() {
    operator_jwt = op.issue(op.public_key(), "jetsource test operator", {{"type", "operator"}});
    nlohmann::json limits = {{"subs", -1},         {"data", -1},    {"payload", -1},
                             {"imports", -1},      {"exports", -1}, {"wildcards", true},
                             {"conn", -1},         {"leaf", -1},    {"mem_storage", -1},
                             {"disk_storage", -1}, {"streams", -1}, {"consumer", -1}};
    account_jwt = op.issue(acct.public_key(), "app", {{"type", "account"}, {"limits", limits}});
    // JetStream in operator mode needs a system account (nats-server exits without one).
    for (const char* js : {"mem_storage", "disk_storage", "streams", "consumer"}) limits.erase(js);
    system_jwt = op.issue(sys.public_key(), "SYS", {{"type", "account"}, {"limits", limits}});
    user_jwt = acct.issue(user.public_key(), "order-system",
                          {{"type", "user"},
                           {"pub", nlohmann::json::object()},
                           {"sub", nlohmann::json::object()},
                           {"subs", -1},
                           {"data", -1},
                           {"payload", -1}});
  }

  /// The server's configuration: trust the operator, know the accounts.
  std::string server_config() const {
    return "operator: \"" + operator_jwt + "\"\nsystem_account: " + sys.public_key() +
           "\nresolver: MEMORY\nresolver_preload: {\n  " + acct.public_key() + ": \"" +
           account_jwt + "\"\n  " + sys.public_key() + ": \"" + system_jwt + "\"\n}\n";
  }

  /// Writes the user's .creds file (as nsc does) to `file`.
  void write_creds(const std::filesystem::path& file, const nkey* signer_seed = nullptr) const {
    std::ofstream(file) << "-----BEGIN NATS USER JWT-----\n"
                        << user_jwt << "\n------END NATS USER JWT------\n\n"
                        << "************************* IMPORTANT *************************\n"
                        << "NKEY Seed printed below can be used to sign and prove identity.\n\n"
                        << "-----BEGIN USER NKEY SEED-----\n"
                        << (signer_seed ? signer_seed->seed() : user.seed())
                        << "\n------END USER NKEY SEED------\n";
  }
};

}  // namespace jetsource::test
