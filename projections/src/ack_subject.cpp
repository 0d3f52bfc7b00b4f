// detail: the tokens of a JetStream ack subject.
#include "ack_subject.hpp"

#include <array>
#include <charconv>

namespace jetsource::detail {

std::optional<ack_meta> parse_ack_subject(std::string_view reply) {
  std::array<std::string_view, 12> t;
  std::size_t n = 0;
  const std::string_view all = reply;
  while (n < t.size()) {
    auto dot = reply.find('.');
    t[n++] = reply.substr(0, dot);
    if (dot == std::string_view::npos) break;
    reply.remove_prefix(dot + 1);
  }
  if (n < 9 || t[0] != "$JS" || t[1] != "ACK") return std::nullopt;
  std::size_t base = n == 9 ? 2 : 4;  // index of <stream>
  auto num = [](std::string_view s) {
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  };
  ack_meta m;
  m.n = {num(t[base + 2]), num(t[base + 3]), num(t[base + 4]), num(t[base + 5]), num(t[base + 6])};
  m.prefix = all.substr(0, static_cast<std::size_t>(t[base + 2].data() - all.data()));
  const char* end = t[base + 6].data() + t[base + 6].size();
  m.suffix = all.substr(static_cast<std::size_t>(end - all.data()));
  return m;
}

}  // namespace jetsource::detail
