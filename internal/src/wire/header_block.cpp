// detail (internal target): the reader of a received commit's header block.
#include "wire/header_block.hpp"

#include "wire/headers.hpp"

namespace jetsource::detail {

std::optional<commit_headers> parse_commit_headers(std::string_view block) noexcept {
  if (!block.starts_with("NATS/1.0") || !block.ends_with("\r\n\r\n")) return std::nullopt;
  block.remove_prefix(block.find("\r\n") + 2);  // the status line
  commit_headers h;
  while (block.size() > 2) {
    auto eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || line.empty() || line.front() == ' ' ||
        line.front() == '\t')
      return std::nullopt;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    std::string_view* slot = key == hdr_aggregate_type   ? &h.type
                             : key == hdr_aggregate_id   ? &h.id
                             : key == hdr_version        ? &h.version
                             : key == hdr_events         ? &h.events
                             : key == hdr_msg_id         ? &h.msg_id
                             : key == hdr_timestamp      ? &h.timestamp
                             : key == hdr_correlation_id ? &h.correlation
                             : key == hdr_causation_id   ? &h.causation
                             : key == hdr_commit_id      ? &h.commit_id
                                                         : nullptr;
    if (slot != nullptr && slot->empty()) *slot = value;  // the first value, as nats.c's Get
  }
  return h;
}

}  // namespace jetsource::detail
