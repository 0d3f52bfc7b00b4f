// The event store's ids and validation: subject tokens, free text, commit ids, the partition
// hash, store options.
#include <jetsource/event_store.hpp>

#include <jetsource/detail/utf8.hpp>

#include "store/ids.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace jetsource {

namespace {

constexpr std::size_t max_token_bytes = 256;

}  // namespace

std::uint32_t fnv1a32(std::string_view s) noexcept {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string new_commit_id() {
  static constexpr std::string_view alphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  // 22 base-62 digits (~131 bits) from three 64-bit draws: 10, 10 and 2 digits per draw, each
  // draw reduced by rejection so every digit stays uniform.
  constexpr std::uint64_t limit = 839299365868340224ULL;  // 62^10: largest multiple below 2^64
  auto draw = [&] {
    std::uint64_t x;
    do x = rng();
    while (x >= limit * (UINT64_MAX / limit));
    return x % limit;
  };
  std::string id(22, '0');
  for (std::size_t i = 0; i < id.size();) {
    std::uint64_t x = draw();
    for (int k = 0; k < 10 && i < id.size(); ++k, ++i) {
      id[i] = alphabet[x % 62];
      x /= 62;
    }
  }
  return id;
}

namespace detail::store {

std::string printable(std::string_view s) {
  const bool utf8 = detail::is_utf8(s);
  std::size_t end = std::min<std::size_t>(s.size(), 40);
  while (utf8 && end > 0 && end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
    --end;  // not in the middle of a character
  std::string out;
  for (std::size_t i = 0; i < end; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80))
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (s.size() > end) out += "...";
  return out;
}

result<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size())
    return make_error(errc::decode_failed, "'{}' is not a decimal number", printable(s));
  return v;
}

}  // namespace detail::store

result<void> validate_token(std::string_view what, std::string_view token) {
  if (token.empty()) return make_error(errc::invalid_id, "invalid {} '': it is empty", what);
  if (token.size() > max_token_bytes)
    return make_error(errc::invalid_id, "invalid {} '{}': it is {} bytes long (at most {})", what,
                      detail::store::printable(token), token.size(), max_token_bytes);
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto c = static_cast<unsigned char>(token[i]);
    std::string_view why;
    if (c == '.')
      why = "'.' separates subject tokens";
    else if (c == '*' || c == '>')
      why = "'*' and '>' are subject wildcards";
    else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
      why = "whitespace is not allowed in a subject";
    else if (c < 0x20 || c == 0x7f)
      why = "control characters are not allowed in a subject";
    if (!why.empty())
      return make_error(errc::invalid_id, "invalid {} '{}': byte {} is {}: {}", what,
                        detail::store::printable(token), i,
                        c < 0x20 || c == 0x7f ? fmt::format("\\x{:02x}", c)
                                              : fmt::format("'{}'", static_cast<char>(c)),
                        why);
  }
  if (auto bad = detail::first_invalid_utf8(token); bad != std::string_view::npos)
    return make_error(errc::invalid_id, "invalid {} '{}': byte {} (\\x{:02x}) is not valid UTF-8",
                      what, detail::store::printable(token), bad,
                      static_cast<unsigned char>(token[bad]));
  return success();
}

result<void> validate_utf8(std::string_view what, std::string_view text) {
  if (auto bad = detail::first_invalid_utf8(text); bad != std::string_view::npos)
    return make_error(errc::invalid_argument, "{} is not valid UTF-8: byte {} is \\x{:02x}", what,
                      bad, static_cast<unsigned char>(text[bad]));
  return success();
}

namespace detail::store {

result<void> check_options(const store_options& o) {
  if (auto r = validate_token("stream name", o.stream); !r)
    return make_error(errc::invalid_argument, "{}", r.error().message);
  if (o.stream.find_first_of("/\\") != std::string::npos)
    return make_error(errc::invalid_argument, "invalid stream name '{}': no '/' or '\\'", o.stream);
  std::string_view prefix = o.subject_prefix;
  if (prefix.empty())
    return make_error(errc::invalid_argument, "invalid subject prefix '': it is empty");
  for (std::size_t start = 0;;) {
    auto dot = prefix.find('.', start);
    auto token = prefix.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (auto r = validate_token("subject prefix token", token); !r)
      return make_error(errc::invalid_argument, "subject prefix '{}': {}", o.subject_prefix,
                        r.error().message);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (o.partitions < 1) return make_error(errc::invalid_argument, "partitions must be at least 1");
  if (o.replicas < 1 || o.replicas > 5)
    return make_error(errc::invalid_argument, "replicas {} (1 to 5)", o.replicas);
  if (o.max_in_flight < 1)
    return make_error(errc::invalid_argument, "max_in_flight must be at least 1");
  if (o.ack_timeout.count() <= 0)
    return make_error(errc::invalid_argument, "ack_timeout must be positive");
  if (o.duplicate_window.count() < 0)
    return make_error(errc::invalid_argument, "duplicate_window must not be negative");
  return success();
}

}  // namespace detail::store

}  // namespace jetsource
