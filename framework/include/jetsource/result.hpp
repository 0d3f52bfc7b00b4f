// jetsource::result<T> and jetsource::error: the one error type of the whole library.
//
// Every public call returns result<T>; no exception crosses the public API. An error carries a
// code (what kind of failure, for programs) and a message (what exactly, for people). A command
// rejected by a domain rule carries the user's own error enum as well (see error::is).
//
// clang-format off
//   auto r = store.append(c);
//   if (!r) spdlog::error("append failed: {}", r.error());  // "conflict: wrong last sequence: 7"
//   if (!r && r.error().is(jetsource::errc::conflict)) { /* load again, decide again */ }
// clang-format on
#pragma once

#include <boost/outcome/basic_result.hpp>
#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/success_failure.hpp>
#include <boost/outcome/try.hpp>

#include <fmt/format.h>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <utility>

namespace jetsource {

/// What kind of failure. Stable: programs switch on these.
enum class errc {
  invalid_argument = 1,    ///< a malformed argument (bad option, bad expected sequence, ...)
  invalid_id,              ///< an aggregate id or type that is not a valid subject token
  unknown_event_type,      ///< an event type name (or schema version) nobody registered
  decode_failed,           ///< a payload that cannot be decoded into its registered type
  encode_failed,           ///< an event that cannot be serialised
  payload_too_large,       ///< a commit larger than the server's max payload
  unreachable,             ///< no server to talk to (down, refused, no responders, no leader)
  timeout,                 ///< the server did not answer in time; the outcome is unknown
  conflict,                ///< optimistic concurrency: someone else appended first
  stream_config_mismatch,  ///< the stream exists with a configuration we must not change
  server_error,            ///< the server refused the request (its message says why)
  server_binary,           ///< the nats-server binary is missing or died on start-up
  rejected,                ///< a command refused by the aggregate's own rules (see error::is)
  not_found,               ///< the thing asked for does not exist
  io,                      ///< local I/O (files, processes)
  internal,                ///< a bug or an unexpected library state
  busy,                    ///< a resource is locked right now (SQLite busy): retry with backoff
  corrupt,                 ///< a damaged database file (SQLite): rebuild it, never retry
};

/// The stable name of an error code, e.g. "conflict".
std::string_view to_string(errc code) noexcept;

/// A command refused by a domain rule: the user's own error enum, type-erased.
struct rejection {
  std::type_index type;  ///< the enum type
  int value;             ///< the enumerator
  std::string reason;    ///< a human sentence
  /// errc::rejected (a rule of the aggregate's state), or what the enum's ADL errc_of says:
  /// errc::invalid_argument (a malformed command), errc::not_found (no such aggregate).
  errc code = errc::rejected;
};

/// The library's error: code + message (+ the domain rejection, when an aggregate refused the
/// command: code errc::rejected, or invalid_argument / not_found as the enum's errc_of says).
struct error {
  errc code = errc::internal;
  std::string message;
  std::optional<jetsource::rejection> rejection = std::nullopt;
  /// The status code of the C library the failure came from, for programs that need more than
  /// `code`: SQLite's extended result code for errors of jetsource::sqlite (e.g. 2067,
  /// SQLITE_CONSTRAINT_UNIQUE); 0 when there is none. Not part of equality.
  int native_code = 0;

  /// True when this error has that code.
  bool is(errc c) const noexcept { return code == c; }

  /// True when this is a domain rejection with exactly that enumerator of the user's enum.
  template <class E>
  requires std::is_enum_v<E>
  bool is(E domain_error) const noexcept {
    return rejection && rejection->type == std::type_index(typeid(E)) &&
           rejection->value == static_cast<int>(domain_error);
  }

  friend bool operator==(const error& a, const error& b) {
    return a.code == b.code && a.message == b.message;
  }
};

/// "conflict: wrong last sequence: 7"
std::string to_string(const error& e);
inline std::ostream& operator<<(std::ostream& os, const error& e) {
  return os << to_string(e);
}

/// result<T>: a T or an error (Boost.Outcome's basic_result with jetsource::error). `*r` and
/// `r->` reach the value like std::optional; using the wrong side terminates (a bug, not an
/// error path).
template <class T>
class result
    : public boost::outcome_v2::basic_result<T, error, boost::outcome_v2::policy::terminate> {
  using base = boost::outcome_v2::basic_result<T, error, boost::outcome_v2::policy::terminate>;

 public:
  using base::base;
  result(const base& b) : base(b) {}        // NOLINT(google-explicit-constructor)
  result(base&& b) : base(std::move(b)) {}  // NOLINT(google-explicit-constructor)

  std::add_lvalue_reference_t<T> operator*() & requires(!std::is_void_v<T>) {
    return this->value();
  }
  std::add_lvalue_reference_t<const T> operator*() const& requires(!std::is_void_v<T>) {
    return this->value();
  }
  std::add_rvalue_reference_t<T> operator*() && requires(!std::is_void_v<T>) {
    return std::move(*this).value();
  }
  std::add_pointer_t<T> operator->() requires(!std::is_void_v<T>) { return &this->value(); }
  std::add_pointer_t<const T> operator->() const requires(!std::is_void_v<T>) {
    return &this->value();
  }
  /// The value, or `fallback` on error.
  template <class U>
  requires(!std::is_void_v<T>) T value_or(U&& fallback)
  const& { return this->has_value() ? this->value() : static_cast<T>(std::forward<U>(fallback)); }
};

using boost::outcome_v2::success;

/// Builds an error; the message is formatted with fmt.
template <class... Args>
error make_error(errc code, fmt::format_string<Args...> format, Args&&... args) {
  return error{code, fmt::format(format, std::forward<Args>(args)...)};
}

}  // namespace jetsource

template <>
struct fmt::formatter<jetsource::error> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const jetsource::error& e, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(jetsource::to_string(e), ctx);
  }
};

/// Returns the error of a failed result from the enclosing function (which returns a result):
/// JETSOURCE_TRY(expr) for result<void>, JETSOURCE_TRY(name, expr) declares `auto&& name`.
#define JETSOURCE_TRY(...) BOOST_OUTCOME_TRY(__VA_ARGS__)
