// detail (internal target): the JetStream ack subject parser.
#include "wire/ack_subject.hpp"

#include <array>
#include <cstddef>

namespace jetsource::detail {

namespace {

// The decimal number from `p` up to the next '.' (or `end`): the position after it, or null
// when that is empty, holds something else than digits, or overflows 64 bits (leading zeros are
// fine, as with std::from_chars).
const char* digits(const char* p, const char* end, std::uint64_t& out) noexcept {
  const char* const start = p;
  // Up to 19 digits cannot overflow: the loop the projector's fetcher runs per number.
  const char* const fast_end = end - start > 19 ? start + 19 : end;
  std::uint64_t v = 0;
  for (unsigned d = 0; p != fast_end && (d = static_cast<unsigned char>(*p) - unsigned{'0'}) <= 9;
       ++p)
    v = v * 10 + d;
  for (; p != end && *p != '.'; ++p) {  // a 20th digit and beyond, or not a digit
    const auto d = static_cast<unsigned>(static_cast<unsigned char>(*p)) - unsigned{'0'};
    if (d > 9 || __builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, d, &v))
      return nullptr;
  }
  if (p == start) return nullptr;
  out = v;
  return p;
}

// A whole token as a decimal number.
bool number(std::string_view s, std::uint64_t& out) noexcept {
  const char* end = s.data() + s.size();
  return digits(s.data(), end, out) == end;
}

// The five numbers at the start of `rest` (<delivered>.<sseq>.<cseq>.<ts>.<pending>), read in
// one pass; `rest` is left at what follows the last one.
bool numbers(std::string_view& rest, ack_numbers& n) noexcept {
  std::uint64_t* const slots[] = {&n.delivered, &n.stream_sequence, &n.consumer_sequence,
                                  &n.timestamp, &n.pending};
  const char* p = rest.data();
  const char* const end = p + rest.size();
  for (std::size_t i = 0; i < 5; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') return false;
      ++p;
    }
    p = digits(p, end, *slots[i]);
    if (p == nullptr) return false;
  }
  rest = std::string_view(p, static_cast<std::size_t>(end - p));
  return true;
}

}  // namespace

std::optional<ack_meta> parse_ack_subject(std::string_view reply) noexcept {
  // One pass over the tokens after "$JS.ACK.", noting where each ends (up to 9 dots: a longer
  // subject is read as its first 12 tokens, the rest going to the suffix).
  constexpr std::string_view root = "$JS.ACK.";
  if (!reply.starts_with(root)) return std::nullopt;
  std::array<std::size_t, 9> end{};
  std::size_t dots = 0;
  for (std::size_t i = root.size(); i < reply.size() && dots < 9; ++i)
    if (reply[i] == '.') end[dots++] = i;
  const std::size_t tokens = dots < 9 ? dots + 1 : 10;   // after $JS.ACK
  if (tokens != 7 && tokens != 10) return std::nullopt;  // 9 or 12 in all
  if (dots < 9) end[dots] = reply.size();
  const std::size_t base = tokens == 7 ? 2 : 4;  // the <delivered> token
  auto token = [&](std::size_t k) {
    const std::size_t from = k == 0 ? root.size() : end[k - 1] + 1;
    return reply.substr(from, end[k] - from);
  };
  ack_meta m;
  if (!number(token(base), m.n.delivered) || !number(token(base + 1), m.n.stream_sequence) ||
      !number(token(base + 2), m.n.consumer_sequence) || !number(token(base + 3), m.n.timestamp) ||
      !number(token(base + 4), m.n.pending))
    return std::nullopt;
  m.prefix = reply.substr(0, end[base - 1] + 1);
  m.suffix = reply.substr(end[base + 4]);
  return m;
}

std::optional<ack_meta> ack_subject_reader::operator()(std::string_view reply) {
  if (!prefix_.empty() && reply.starts_with(prefix_)) {
    ack_meta m;
    std::string_view rest = reply.substr(prefix_.size());
    // The 9-token form ends with <pending>; the 12-token form has one more token (and anything
    // after it goes to the suffix too).
    if (numbers(rest, m.n) &&
        (twelve_ ? rest.size() > 1 && rest.front() == '.' && rest[1] != '.' : rest.empty())) {
      m.prefix = reply.substr(0, prefix_.size());
      m.suffix = rest;
      return m;
    }
  }
  auto m = parse_ack_subject(reply);
  if (m) {
    prefix_ = m->prefix;
    twelve_ = !m->suffix.empty();
  }
  return m;
}

}  // namespace jetsource::detail
