// detail: what personal<T>'s cereal functions need at encode and decode time: the key provider
// of the calling thread, XChaCha20-Poly1305 sealing (libsodium, kept out of public headers), and
// the exception that carries a jetsource::error through cereal to the codec's boundary.
// Not API: see <jetsource/personal.hpp>; the field format is in docs/wire-format.md.
#pragma once

#include <jetsource/result.hpp>

#include <array>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace jetsource::detail {

/// A data subject's key: 32 random bytes (crypto_aead_xchacha20poly1305_ietf_KEYBYTES).
using data_key = std::array<unsigned char, 32>;

/// Where personal<T> gets keys. Implemented by key_store (framework/src/personal/); safe to call
/// from any thread.
class key_provider {
 public:
  virtual ~key_provider() = default;
  /// The subject's key, created when it has none yet. errc::rejected when the subject was
  /// forgotten; errc::unreachable / errc::timeout when the key store cannot be asked.
  virtual result<data_key> key_for_write(std::string_view subject) = 0;
  /// The subject's key, or nullopt when it was destroyed (forgotten). errc::unreachable /
  /// errc::timeout when the key store cannot be asked.
  virtual result<std::optional<data_key>> key_for_read(std::string_view subject) = 0;
};

/// The provider of the calling thread: its key_scope's, else the installed one, else null.
key_provider* current_key_provider() noexcept;
/// Sets the calling thread's provider (key_scope); returns the previous one.
key_provider* exchange_thread_key_provider(key_provider* p) noexcept;

/// A jetsource::error thrown through cereal by personal<T> and caught at the codec's boundary,
/// which returns it as it is (its code stays errc::unreachable, errc::rejected, ...).
class personal_data_error : public std::exception {
 public:
  explicit personal_data_error(error e) : error_(std::move(e)) {}
  const char* what() const noexcept override { return error_.message.c_str(); }
  const error& get() const noexcept { return error_; }

 private:
  error error_;
};

/// The encrypted form of one value: base64 (standard alphabet, padded) nonce and ciphertext.
struct sealed_value {
  std::string nonce;
  std::string ct;
};

/// Encrypts `plaintext` with `key`, a fresh random 24-byte nonce, and the subject's UTF-8 bytes
/// as associated data (a ciphertext moved to another subject does not decrypt).
sealed_value seal(const data_key& key, std::string_view subject, std::string_view plaintext);

/// Decrypts what seal wrote. errc::decode_failed when the base64 is malformed or the ciphertext
/// does not authenticate (tampered, another subject, or another key).
result<std::string> unseal(const data_key& key, std::string_view subject, std::string_view nonce,
                           std::string_view ct);

/// Throws personal_data_error when `r` holds an error.
template <class T>
T value_or_throw(result<T> r) {
  if (!r) throw personal_data_error(std::move(r).error());
  return std::move(r).value();
}

}  // namespace jetsource::detail
