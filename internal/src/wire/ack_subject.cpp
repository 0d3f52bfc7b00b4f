// detail (internal target): the JetStream ack subject parser.
#include "wire/ack_subject.hpp"

#include <array>
#include <charconv>
#include <cstddef>

namespace jetsource::detail {

namespace {

// A whole token as a decimal number (no sign, no spaces, not empty).
std::optional<std::uint64_t> number(std::string_view s) noexcept {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<ack_meta> parse_ack_subject(std::string_view reply) noexcept {
  std::array<std::string_view, 12> t;
  std::size_t n = 0;
  const std::string_view all = reply;
  while (n < t.size()) {
    auto dot = reply.find('.');
    t[n++] = reply.substr(0, dot);
    if (dot == std::string_view::npos) break;
    reply.remove_prefix(dot + 1);
  }
  if ((n != 9 && n != 12) || t[0] != "$JS" || t[1] != "ACK") return std::nullopt;
  const std::size_t base = n == 9 ? 2 : 4;  // index of <stream>
  std::array<std::uint64_t, 5> v{};
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto x = number(t[base + 2 + i]);
    if (!x) return std::nullopt;
    v[i] = *x;
  }
  ack_meta m;
  m.n = {v[0], v[1], v[2], v[3], v[4]};
  m.prefix = all.substr(0, static_cast<std::size_t>(t[base + 2].data() - all.data()));
  const char* end = t[base + 6].data() + t[base + 6].size();
  m.suffix = all.substr(static_cast<std::size_t>(end - all.data()));
  return m;
}

}  // namespace jetsource::detail
