// libFuzzer target: the wire header parsers, fed arbitrary bytes. The header block reader the
// projector uses on every delivered commit (parse_commit_headers), the Es-Events count, the
// JetStream ack-subject parser, and the decimal Es-Version reading. Besides not crashing (ASan,
// UBSan), each checks what its callers rely on: views inside the input, no line break inside a
// value, the first value of a repeated header.
#include "wire/ack_subject.hpp"
#include "wire/header_block.hpp"
#include "wire/headers.hpp"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void require(bool ok) {
  if (!ok) std::abort();  // an invariant broken: libFuzzer reports it as a crash
}

bool inside(std::string_view part, std::string_view all) {
  return part.empty() ||
         (part.data() >= all.data() && part.data() + part.size() <= all.data() + all.size());
}

void check_headers(std::string_view block) {
  auto h = jetsource::detail::parse_commit_headers(block);
  if (!h) return;
  require(block.starts_with("NATS/1.0") && block.ends_with("\r\n\r\n"));
  for (std::string_view v :
       {h->type, h->id, h->version, h->events, h->msg_id, h->timestamp, h->correlation,
        h->causation, h->commit_id, h->sequence, h->state_schema}) {
    require(inside(v, block));
    require(v.find("\r\n") == std::string_view::npos);
    require(v.empty() ||
            (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t'));
  }
  // What the projector does next with them (applier.cpp, describe): a decimal version and the
  // number of events named.
  std::uint64_t version = 0;
  std::from_chars(h->version.data(), h->version.data() + h->version.size(), version);
  const std::size_t n = jetsource::detail::event_count(h->events);
  require(h->events.empty() ? n == 0 : n >= 1 && n <= h->events.size() + 1);
}

void check_ack_subject(std::string_view reply) {
  auto m = jetsource::detail::parse_ack_subject(reply);
  if (!m) return;
  require(reply.starts_with("$JS.ACK."));
  require(inside(m->prefix, reply) && inside(m->suffix, reply));
  require(m->prefix.size() + m->suffix.size() < reply.size());
}

// Two subjects of one consumer, one per line: the reader's fast path (the second one sharing the
// first one's prefix) must answer what the full parse answers.
void check_ack_reader(std::string_view in) {
  const auto nl = in.find('\n');
  if (nl == std::string_view::npos) return;
  jetsource::detail::ack_subject_reader read;
  (void)read(in.substr(0, nl));
  const auto next = in.substr(nl + 1);
  auto fast = read(next);
  auto full = jetsource::detail::parse_ack_subject(next);
  require(fast.has_value() == full.has_value());
  if (!fast) return;
  require(fast->prefix == full->prefix && fast->suffix == full->suffix);
  require(fast->n.delivered == full->n.delivered &&
          fast->n.stream_sequence == full->n.stream_sequence &&
          fast->n.consumer_sequence == full->n.consumer_sequence &&
          fast->n.timestamp == full->n.timestamp && fast->n.pending == full->n.pending);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_headers(in);
  check_ack_subject(in);
  check_ack_reader(in);
  return 0;
}
