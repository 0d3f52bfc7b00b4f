// personal fields: XChaCha20-Poly1305 (IETF) sealing with libsodium, base64 in the field.
#include <jetsource/detail/personal_codec.hpp>

#include <sodium.h>

#include <cstdlib>
#include <vector>

namespace jetsource::detail {

namespace {

constexpr int b64 = sodium_base64_VARIANT_ORIGINAL;  // standard alphabet, padded

// sodium_init once (idempotent and thread-safe in libsodium >= 1.0.11); it fails only when
// the system has no entropy source, and then nothing may be encrypted.
void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) std::abort();
}

std::string to_base64(const unsigned char* data, std::size_t n) {
  std::string out(sodium_base64_encoded_len(n, b64), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, b64);
  out.resize(out.size() - 1);  // the terminating NUL sodium writes
  return out;
}

std::optional<std::vector<unsigned char>> from_base64(std::string_view text) {
  std::vector<unsigned char> out(text.size() / 4 * 3 + 3);
  std::size_t n = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &n, &end, b64) !=
          0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(n);
  return out;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

sealed_value seal(const data_key& key, std::string_view subject, std::string_view plaintext) {
  static_assert(std::tuple_size_v<data_key> == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  ensure_sodium();
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  randombytes_buf(nonce, sizeof nonce);
  std::vector<unsigned char> ct(plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long ct_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &ct_len, bytes(plaintext), plaintext.size(),
                                             bytes(subject), subject.size(), nullptr, nonce,
                                             key.data());
  return {to_base64(nonce, sizeof nonce), to_base64(ct.data(), ct_len)};
}

result<std::string> unseal(const data_key& key, std::string_view subject, std::string_view nonce,
                           std::string_view ct) {
  ensure_sodium();
  auto n = from_base64(nonce);
  auto c = from_base64(ct);
  if (!n || n->size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES || !c ||
      c->size() < crypto_aead_xchacha20poly1305_ietf_ABYTES)
    return make_error(errc::decode_failed,
                      "personal field of data subject '{}': malformed nonce or ciphertext",
                      subject);
  std::string plain(c->size() - crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plain.data()), &plain_len, nullptr, c->data(), c->size(),
          bytes(subject), subject.size(), n->data(), key.data()) != 0)
    return make_error(errc::decode_failed,
                      "personal field of data subject '{}' does not authenticate (tampered, or "
                      "encrypted for another subject or with another key)",
                      subject);
  plain.resize(plain_len);
  return plain;
}

}  // namespace jetsource::detail
