// detail: a delivered commit message as an envelope for the workers.
#include "envelope_of.hpp"

#include <jetsource/event_store.hpp>

#include "wire/header_block.hpp"
#include "wire/headers.hpp"

#include <nats/nats.h>

#include <optional>
#include <string_view>

namespace jetsource::detail {

namespace {

std::string_view header_view(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == nullptr) return {};
  return v;
}

// Reads them straight from the message's header block (nats.c's natsMsgHeader_Get first copies
// every header into a hash table, a malloc per header: the fetcher's largest cost). Anything
// unexpected (another layout, folded lines) returns nullopt and natsMsgHeader_Get is used.
std::optional<commit_headers> read_commit_headers(natsMsg* m) {
  auto block = header_block(m);
  if (!block) return std::nullopt;
  return parse_commit_headers(*block);
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
                       header_view(raw, hdr_correlation_id), header_view(raw, hdr_causation_id),
                       header_view(raw, hdr_commit_id),      header_view(raw, hdr_sequence),
                       header_view(raw, hdr_state_schema)};
  e.event_types = h->events;
  // the commit id: Es-Commit-Id when the commit slot took Nats-Msg-Id (ADR 0015)
  e.msg_id = h->commit_id.empty() ? h->msg_id : h->commit_id;
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
