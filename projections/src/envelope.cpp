// detail: what an envelope says about its commit (describe), the envelopes of owned copies, and
// the key of an aggregate in the applier's maps.
#include "applier.hpp"

#include "wire/headers.hpp"

#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <string>

namespace jetsource::detail {

namespace {

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// The n-th token from the end of a subject (0: the last), or "".
std::string_view token_from_end(std::string_view subject, int n) {
  for (;;) {
    auto dot = subject.rfind('.');
    std::string_view last = dot == std::string_view::npos ? subject : subject.substr(dot + 1);
    if (n == 0) return last;
    if (dot == std::string_view::npos) return {};
    subject = subject.substr(0, dot);
    --n;
  }
}

}  // namespace

void aggregate_key(std::string& out, std::string_view type, std::string_view id) {
  // Sized once and copied into (assign, push_back and append cost three times as much).
  out.resize(type.size() + 1 + id.size());
  char* p = out.data();
  std::char_traits<char>::copy(p, type.data(), type.size());  // a no-op for "" (no memcpy)
  p[type.size()] = '\x1f';
  std::char_traits<char>::copy(p + type.size() + 1, id.data(), id.size());
}

std::string aggregate_key(std::string_view type, std::string_view id) {
  std::string k;
  k.reserve(type.size() + id.size() + 1);
  aggregate_key(k, type, id);
  return k;
}

envelope owned_commit::view(std::uint64_t sequence) const {
  envelope e;
  e.sequence = sequence;
  e.subject = subject;
  e.event_types = events;
  e.msg_id = msg_id;
  e.body = body;
  describe(e, type, id, version);
  return e;
}

void describe(envelope& e, std::string_view type_header, std::string_view id_header,
              std::string_view version_header) {
  e.aggregate_type = type_header.empty() ? token_from_end(e.subject, 2) : type_header;
  e.aggregate_id = id_header.empty() ? token_from_end(e.subject, 0) : id_header;
  if (type_header.empty() || id_header.empty()) {
    e.malformed = "not a jetsource commit: Es-Aggregate-Type or Es-Aggregate-Id missing";
    return;
  }
  auto version = to_u64(version_header);
  if (!version || *version == 0) {
    e.malformed = fmt::format("bad Es-Version header '{}'", version_header);
    return;
  }
  if (e.event_types.empty()) {
    e.malformed = "Es-Events header missing";
    return;
  }
  const std::uint64_t count = event_count(e.event_types);
  if (count > *version) {
    e.malformed = fmt::format("Es-Version {} is lower than its {} events", *version, count);
    return;
  }
  e.version = *version;
  e.first_version = *version - count + 1;
}

}  // namespace jetsource::detail
