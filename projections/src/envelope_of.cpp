// detail: a delivered commit message as an envelope for the workers.
#include "envelope_of.hpp"

#include <jetsource/event_store.hpp>

#include "wire/headers.hpp"

#include <nats/nats.h>

#include <cstring>
#include <optional>
#include <string_view>

namespace jetsource::detail {

namespace {

std::string_view header_view(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == nullptr) return {};
  return v;
}

// The headers a commit needs.
struct commit_headers {
  std::string_view type, id, version, events, msg_id, timestamp, correlation, causation;
};

// Reads them straight from the message's header block. nats.c 3.4.1 keeps a received message in
// one allocation, subject\0 reply\0 headers\0 data\0, and its natsMsgHeader_Get first copies
// every header into a hash table (a malloc per header: the fetcher's largest cost). Anything
// unexpected (another layout, folded lines) returns nullopt and natsMsgHeader_Get is used.
std::optional<commit_headers> read_commit_headers(natsMsg* m) {
  const char* reply = natsMsg_GetReply(m);
  const char* data = natsMsg_GetData(m);
  if (reply == nullptr || data == nullptr) return std::nullopt;
  const char* start = reply + std::strlen(reply) + 1;
  if (data < start + 14 || data - start > 65536 || data[-1] != '\0') return std::nullopt;
  std::string_view block(start, static_cast<std::size_t>(data - start - 1));
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
                                                         : nullptr;
    if (slot != nullptr && slot->empty()) *slot = value;  // the first value, as nats.c's Get
  }
  return h;
}

}  // namespace

envelope envelope_of(msg_ptr m, std::uint64_t sequence) {
  natsMsg* raw = m.get();
  envelope e;
  e.sequence = sequence;
  e.subject = natsMsg_GetSubject(raw);
  auto h = read_commit_headers(raw);
  if (!h)
    h = commit_headers{header_view(raw, hdr_aggregate_type), header_view(raw, hdr_aggregate_id),
                       header_view(raw, hdr_version),        header_view(raw, hdr_events),
                       header_view(raw, hdr_msg_id),         header_view(raw, hdr_timestamp),
                       header_view(raw, hdr_correlation_id), header_view(raw, hdr_causation_id)};
  e.event_types = h->events;
  e.msg_id = h->msg_id;
  e.timestamp = h->timestamp;
  e.correlation_id = h->correlation;
  e.causation_id = h->causation;
  e.body = {natsMsg_GetData(raw), static_cast<std::size_t>(natsMsg_GetDataLength(raw))};
  e.reply = natsMsg_GetReply(raw);
  describe(e, h->type, h->id, h->version);
  e.owner = {m.release(), [](void* p) { natsMsg_Destroy(static_cast<natsMsg*>(p)); }};
  return e;
}

}  // namespace jetsource::detail
