// Crypto-shredding: event fields that hold personal data, encrypted per data subject, and the
// key store whose forget() makes them unreadable everywhere (docs/security.md, ADR 0016).
//
// A personal<T> field is written encrypted (XChaCha20-Poly1305, one key per data subject, keys
// in the JetStream KV bucket jsk-<STREAM>); after key_store::forget(subject) it decodes as a
// placeholder: no value, forgotten() true. The field format is in docs/wire-format.md.
//
// Thread-safety: a key_store is safe to share between threads (its cache has its own mutex); a
// personal<T> is a value. key_scope affects only the thread that made it.
//
// clang-format off
//   struct customer_registered {
//     static constexpr std::string_view type_name = "CustomerRegistered";
//     std::string customer_id;
//     jetsource::personal<std::string> email;   // {customer_id, "ann@example.com"}
//     template <class A> void serialize(A& a) { a(CEREAL_NVP(customer_id), CEREAL_NVP(email)); }
//   };
// clang-format on
//
// clang-format off
//   auto keys = jetsource::key_store::open(conn, {.stream = "ORDERS"});
//   keys->install();                            // every encode/decode of this process uses it
//   auto gone = keys->forget("c-7");            // c-7's personal fields: forgotten from now on
// clang-format on
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/detail/personal_codec.hpp>
#include <jetsource/event.hpp>
#include <jetsource/result.hpp>

#include <cereal/archives/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace jetsource {

/// A value that is personal data of one data subject (a customer id, a user id: a pseudonymous
/// id, never the personal data itself, since it is stored in the clear to find the key).
/// Three states: empty (no value given), a value, or forgotten (its subject's key was destroyed:
/// the value cannot be read any more). Encoded only with the JSON codec.
template <class T>
class personal {
 public:
  personal() = default;
  personal(std::string subject, T value) : subject_(std::move(subject)), value_(std::move(value)) {}
  /// No value, for a subject (what an optional field that was not given holds).
  explicit personal(std::string subject) : subject_(std::move(subject)) {}
  /// What a field of a forgotten subject decodes as.
  static personal forgotten_of(std::string subject) {
    personal p(std::move(subject));
    p.forgotten_ = true;
    return p;
  }

  const std::string& subject() const noexcept { return subject_; }
  bool has_value() const noexcept { return value_.has_value(); }
  /// True when the subject's key was destroyed: has_value() is then false.
  bool forgotten() const noexcept { return forgotten_; }
  /// The value; std::bad_optional_access when there is none.
  const T& value() const { return value_.value(); }
  const std::optional<T>& get() const noexcept { return value_; }
  T value_or(T fallback) const { return value_ ? *value_ : std::move(fallback); }

  bool operator==(const personal&) const = default;

  /// {"$pii":1,"subject":S,"nonce":B64,"ct":B64}; without nonce/ct when there is no value, with
  /// "forgotten":true when forgotten. Needs a key provider (key_store::install or key_scope).
  template <class A>
  void save(A& ar) const {
    static_assert(std::is_same_v<A, cereal::JSONOutputArchive>,
                  "jetsource::personal<T> is encoded only by jetsource's JSON codec");
    ar(cereal::make_nvp("$pii", 1));
    if (!subject_.empty()) ar(cereal::make_nvp("subject", subject_));
    if (forgotten_) ar(cereal::make_nvp("forgotten", true));
    if (!value_) return;
    auto sealed = seal_value();
    ar(cereal::make_nvp("nonce", sealed.nonce), cereal::make_nvp("ct", sealed.ct));
  }

  template <class A>
  void load(A& ar) {
    static_assert(std::is_same_v<A, detail::json_reader>,
                  "jetsource::personal<T> is decoded only by jetsource's JSON codec");
    int format = 0;
    ar(cereal::make_nvp("$pii", format));
    if (format != 1)
      throw cereal::Exception("personal field: unknown format $pii " + std::to_string(format));
    subject_.clear();
    value_.reset();
    forgotten_ = false;
    if (ar.has_member("subject")) ar(cereal::make_nvp("subject", subject_));
    if (ar.has_member("forgotten")) {
      ar(cereal::make_nvp("forgotten", forgotten_));
      if (forgotten_) return;
    }
    if (!ar.has_member("ct")) return;
    std::string nonce, ct;
    ar(cereal::make_nvp("nonce", nonce), cereal::make_nvp("ct", ct));
    open_value(nonce, ct);
  }

 private:
  static detail::key_provider& provider() {
    auto* p = detail::current_key_provider();
    if (p == nullptr)
      throw detail::personal_data_error(
          make_error(errc::internal,
                     "a personal field needs a key store: call key_store::install() "
                     "(or make a key_scope) before encoding or decoding events"));
    return *p;
  }

  detail::sealed_value seal_value() const {
    if (subject_.empty())
      throw detail::personal_data_error(
          make_error(errc::invalid_argument, "a personal value needs a data subject"));
    auto key = detail::value_or_throw(provider().key_for_write(subject_));
    auto plain = detail::value_or_throw(detail::to_json("value", *value_));
    return detail::seal(key, subject_, plain);
  }

  void open_value(std::string_view nonce, std::string_view ct) {
    auto key = detail::value_or_throw(provider().key_for_read(subject_));
    if (!key) {
      forgotten_ = true;
      return;
    }
    auto plain = detail::value_or_throw(detail::unseal(*key, subject_, nonce, ct));
    value_ = detail::value_or_throw(detail::from_json<T>("value", plain));
  }

  std::string subject_;
  std::optional<T> value_;
  bool forgotten_ = false;
};

/// The key store of one stream: KV bucket jsk-<stream>, one key per data subject.
struct key_store_options {
  std::string stream = "EVENTS";         ///< the event stream whose personal fields it keys
  int replicas = 1;                      ///< same as the stream's (3 on a cluster)
  std::size_t cache_capacity = 100'000;  ///< keys kept in memory
  /// How long a cached key is used without asking the store again: another process's forget()
  /// reaches this one's decoding within this time (this process's own forget() at once).
  std::chrono::seconds cache_ttl{60};
  std::chrono::milliseconds timeout{5000};  ///< per key store request
};

/// Cache counters (the bench and docs/performance.md report the hit rate).
struct key_cache_stats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;  ///< asked the key store
};

namespace detail {
class key_store_state;
}

/// The replicated key store of personal data: keys are created on first use (by a write),
/// cached, and destroyed by forget(). A copy shares the same store and cache.
class key_store {
 public:
  /// Creates the KV bucket jsk-<stream> (history 1, file storage, the replicas given) or binds
  /// to it. errc::unreachable / errc::timeout when the server cannot be asked.
  static result<key_store> open(const connection& conn, key_store_options options);

  /// Destroys the subject's key: its stored message is erased (overwritten on the server's
  /// disk), then a purge marker keeps the subject forgotten. Idempotent. Afterwards personal
  /// fields of the subject decode as forgotten, and new personal values for it are refused.
  result<void> forget(std::string_view subject);
  /// True when the subject's key was destroyed (a subject without any key yet: false).
  result<bool> forgotten(std::string_view subject);

  /// Makes this store the process's key provider for personal fields (every thread without a
  /// key_scope). It stays alive as long as it is installed.
  void install() const;
  /// Removes the installed provider and releases it (call it when no thread encodes or decodes
  /// any more, before the connection closes). Decoding personal fields then fails clearly.
  static void uninstall();

  key_cache_stats cache_stats() const;
  const key_store_options& options() const noexcept;
  /// The KV bucket's name: jsk-<stream>.
  std::string bucket() const;

 private:
  friend class key_scope;
  explicit key_store(std::shared_ptr<detail::key_store_state> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::key_store_state> state_;
};

/// The KV key of a data subject in jsk-<stream>: the subject itself when it is made of letters,
/// digits, '-' and '_' only, else "h." + lowercase hex of its UTF-8 bytes.
std::string key_name_of(std::string_view subject);

/// Uses `keys` for personal fields on the calling thread while it lives (overrides install()).
class key_scope {
 public:
  explicit key_scope(const key_store& keys);
  ~key_scope();
  key_scope(const key_scope&) = delete;
  key_scope& operator=(const key_scope&) = delete;

 private:
  std::shared_ptr<detail::key_store_state> keep_;
  detail::key_provider* previous_;
};

}  // namespace jetsource
