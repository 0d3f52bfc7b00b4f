// detail (internal target): the reader of a received commit's header block.
#include "wire/header_block.hpp"

#include "wire/headers.hpp"

#include <cstring>

namespace jetsource::detail {

namespace {

// The first "\r\n" at or after `p` (a lone '\r' belongs to its line), or `end`.
const char* crlf(const char* p, const char* end) noexcept {
  while (p < end) {
    const auto* r =
        static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
    if (r == nullptr || r + 1 >= end) return end;
    if (r[1] == '\n') return r;
    p = r + 1;
  }
  return end;
}

bool blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

constexpr std::size_t length(const char* name) noexcept {
  return std::string_view(name).size();
}

// Where the value of header `key` goes, or null for a header a commit does not need. Chosen by
// the name's length first (most lengths have one candidate): the fetcher reads every header of
// every delivery, and comparing each with all eleven names in turn cost more than the scan.
std::string_view* slot_of(commit_headers& h, std::string_view key) noexcept {
  static_assert(length(hdr_events) == 9 && length(hdr_version) == 10 && length(hdr_msg_id) == 11 &&
                length(hdr_timestamp) == 12 && length(hdr_commit_id) == 12 &&
                length(hdr_aggregate_id) == 15 && length(hdr_causation_id) == 15 &&
                length(hdr_aggregate_type) == 17 && length(hdr_correlation_id) == 17 &&
                length(hdr_sequence) == 13 && length(hdr_state_schema) == 15);
  switch (key.size()) {
    case 9:
      return key == hdr_events ? &h.events : nullptr;
    case 10:
      return key == hdr_version ? &h.version : nullptr;
    case 11:
      return key == hdr_msg_id ? &h.msg_id : nullptr;
    case 12:
      return key == hdr_timestamp ? &h.timestamp : key == hdr_commit_id ? &h.commit_id : nullptr;
    case 13:
      return key == hdr_sequence ? &h.sequence : nullptr;
    case 15:
      return key == hdr_aggregate_id   ? &h.id
             : key == hdr_causation_id ? &h.causation
             : key == hdr_state_schema ? &h.state_schema
                                       : nullptr;
    case 17:
      return key == hdr_aggregate_type   ? &h.type
             : key == hdr_correlation_id ? &h.correlation
                                         : nullptr;
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<commit_headers> parse_commit_headers(std::string_view block) noexcept {
  if (!block.starts_with("NATS/1.0") || !block.ends_with("\r\n\r\n")) return std::nullopt;
  const char* const end = block.data() + block.size();
  const char* p = crlf(block.data(), end) + 2;  // past the status line
  commit_headers h;
  while (end - p > 2) {
    const char* const eol = crlf(p, end);  // there is one: the block ends with "\r\n"
    const auto* colon =
        static_cast<const char*>(std::memchr(p, ':', static_cast<std::size_t>(eol - p)));
    if (colon == nullptr || blank(*p)) return std::nullopt;
    const std::string_view key(p, static_cast<std::size_t>(colon - p));
    const char* from = colon + 1;
    const char* to = eol;
    while (from < to && blank(*from)) ++from;
    while (to > from && blank(to[-1])) --to;
    p = eol + 2;
    std::string_view* slot = slot_of(h, key);
    // the first value, as nats.c's Get
    if (slot != nullptr && slot->empty())
      *slot = std::string_view(from, static_cast<std::size_t>(to - from));
  }
  return h;
}

}  // namespace jetsource::detail
