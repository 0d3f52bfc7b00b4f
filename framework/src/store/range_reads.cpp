// The event store's reads of the commits before an aggregate's head (its last commit, read
// first): direct gets for one or two, an ordered consumer for more, and on a replicated stream
// the check that a replica's commits lead to the leader's head, else the leader's own.
#include "log.hpp"
#include "store/reads.hpp"
#include "store/version_chain.hpp"
#include "wire/ack_subject.hpp"
#include "wire/headers.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace jetsource::detail::store {

namespace {

// What the readers below hand each message to, in order, with its stream sequence: the sink may
// keep the message (move it out) or leave it to the reader.
using owned_sink = std::function<result<void>(msg_ptr&, std::uint64_t)>;

// Direct get next-by-subject from `from`, then from each returned sequence + 1, up to (not
// including) `last_seq`; never "until not found" (that would scan the rest of the stream).
// One round trip per commit, no set-up: the fastest way to read one or two messages. On a
// replicated stream the head came from the leader and the replica answering may not have applied
// the commits before it yet: "none" is asked again for a while (it catches up within ms).
result<void> read_direct(const store_state& st, const std::string& subject, std::uint64_t from,
                         std::uint64_t last_seq, const owned_sink& sink) {
  constexpr auto catch_up_patience = std::chrono::seconds{2};
  const auto give_up = std::chrono::steady_clock::now() + catch_up_patience;
  for (std::uint64_t next = from; next < last_seq;) {
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.Sequence = next;
    o.NextBySubject = subject.c_str();
    auto m = direct_get(st.js.get(), st.options.stream, o,
                        fmt::format("read {} from sequence {}", subject, next));
    if (!m) return std::move(m).error();
    if (!*m && heads_from_leader(st) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
      continue;
    }
    if (!*m)
      return make_error(errc::internal, "read {}: no message from sequence {}, expected one at {}",
                        subject, next, last_seq);
    std::uint64_t seq = natsMsg_GetSequence(m->get());
    if (seq >= last_seq) break;
    if (auto r = sink(*m, seq); !r) return r;
    next = seq + 1;
  }
  return success();
}

// The stream sequence of a message delivered by a consumer, from its ack (reply) subject; nullopt
// for a reply subject of another form.
std::optional<std::uint64_t> stream_sequence_of(natsMsg* m) {
  const char* reply = natsMsg_GetReply(m);
  if (reply == nullptr) return std::nullopt;
  auto meta = detail::parse_ack_subject(reply);
  if (!meta) return std::nullopt;
  return meta->n.stream_sequence;
}

// How long an ordered consumer may stay without interest before the server deletes it (a safety
// net should the process stop before the reaper deleted it).
constexpr auto ordered_inactive = std::chrono::seconds{10};

// The rest of a read whose ordered consumer went silent, one message get from the stream leader
// per commit. On a replicated stream the server may place the (R1) consumer on a follower, and a
// follower can lag: after leader kills, one replica stayed a message behind for a minute and a
// read from sequence 1 timed out there (make test, 2026-12-03).
result<void> read_from_leader(const store_state& st, const std::string& subject, std::uint64_t from,
                              std::uint64_t last_seq, const owned_sink& sink) {
  for (std::uint64_t next = from; next < last_seq;) {
    const auto what =
        fmt::format("read {} from sequence {} (from the stream leader)", subject, next);
    auto m = from_leader(st, {.stream = st.options.stream,
                              .sequence = next,
                              .next_by_subject = subject,
                              .what = what,
                              .patience = st.conn->options.request_timeout});
    if (!m) return std::move(m).error();
    if (!*m)
      return make_error(errc::internal, "{}: no message, expected one at {}", what, last_seq);
    const std::uint64_t seq = reply_sequence(m->get());
    if (seq < next)  // not what was asked for: never hand over a commit twice
      return make_error(errc::internal, "{}: the answer is sequence {}", what, seq);
    if (seq >= last_seq) break;
    if (auto r = sink(*m, seq); !r) return r;
    next = seq + 1;
  }
  return success();
}

// An ordered consumer (ephemeral, flow-controlled, filtered to the subject) from `from` until
// `last_seq` is delivered: ~0.3-0.4 ms to the first message, then streams. Deleted afterwards
// so a busy process does not leave thousands of idle consumers behind, by the store's reaper
// thread: the deletion's round trip (0.2 to 0.7 ms) is then not the reader's.
result<void> read_ordered(const store_state& st, const std::string& subject, std::uint64_t from,
                          std::uint64_t last_seq, const owned_sink& sink) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = st.options.stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = from;
  so.Config.InactiveThreshold =
      std::chrono::duration_cast<std::chrono::nanoseconds>(ordered_inactive).count();
  natsSubscription* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&raw, st.js.get(), subject.c_str(), nullptr, &so, &jerr);
  detail::subscription_ptr sub(raw);
  if (s != NATS_OK) return nats_error(s, fmt::format("read {} (ordered consumer)", subject), jerr);
  // On a replicated stream a silent consumer is not waited out: the leader has the rest.
  const auto wait = heads_from_leader(st)
                        ? std::min<std::int64_t>(st.conn->options.request_timeout.count(), 1000)
                        : st.conn->options.request_timeout.count();
  for (std::uint64_t expected = from;;) {  // the next sequence the read needs
    natsMsg* next = nullptr;
    s = natsSubscription_NextMsg(&next, sub.get(), wait);
    msg_ptr m(next);
    if (s != NATS_OK) {
      st.reaper->add(st.conn->nc.get(), std::move(sub));
      if (s == NATS_TIMEOUT && heads_from_leader(st))
        return read_from_leader(st, subject, expected, last_seq, sink);
      return nats_error(s, fmt::format("read {} from sequence {}", subject, from));
    }
    std::uint64_t seq = 0;
    if (auto d = stream_sequence_of(m.get())) {
      seq = *d;
    } else {  // a reply subject of another form: ask nats.c
      jsMsgMetaData* md = nullptr;
      if (natsMsg_GetMetaData(&md, m.get()) != NATS_OK) continue;  // not a stream message
      seq = md->Sequence.Stream;
      jsMsgMetaData_Destroy(md);
    }
    // Each sequence goes to the sink once, in order: one delivered again (nats.c recreates an
    // ordered consumer it finds out of step) was handed over already.
    if (seq < expected) continue;
    if (seq >= last_seq) {                                // the last message is already in hand
      st.reaper->add(st.conn->nc.get(), std::move(sub));  // deleted off the caller's path
      return success();
    }
    if (auto r = sink(m, seq); !r) {
      st.reaper->add(st.conn->nc.get(), std::move(sub));
      return r;
    }
    expected = seq + 1;
  }
}

// Hands the messages of `subject` with sequence in (after, last) to `sink` in order; `last` (the
// subject's last message, already in hand, with `last_version` and `last_events` from its
// headers) is the caller's. The one place that chooses how to read (measured on 2.9.10,
// /tmp/probe: direct gets win for 1-2 messages, an ordered consumer from 3).
result<void> read_range_from(const store_state& st, const std::string& subject, std::uint64_t after,
                             std::uint64_t last_seq, std::uint64_t last_version,
                             std::size_t last_events, const owned_sink& sink) {
  // At most this many commits precede the last one in range: each holds at least one event,
  // and each takes a stream sequence.
  const std::uint64_t events_before =
      last_version >= last_events ? last_version - last_events : last_seq;
  const std::uint64_t at_most = std::min(events_before, last_seq - after - 1);
  if (at_most > 2 && st.options.load_with_consumers)
    return read_ordered(st, subject, after + 1, last_seq, sink);
  if (at_most > 0)  // 0: the last commit is the first, or the only one after `after`
    return read_direct(st, subject, after + 1, last_seq, sink);
  return success();
}

}  // namespace

// Hands the messages of `subject` with sequence in (after, last_seq) to `sink` in order; `last`
// (the subject's last message, at `last_seq`, already in hand) is the caller's. On a replicated
// stream the commits come from replicas (direct gets, an ordered consumer): checked by a
// version_chain, each held back until the commit after it (or the head) confirms its sequence,
// and what does not follow is read from the leader instead, from the last commit handed over.
result<void> read_range(const store_state& st, const std::string& subject, std::uint64_t after,
                        natsMsg* last, std::uint64_t last_seq, const message_sink& sink) {
  auto last_version = version_of(last, last_seq);
  if (!last_version) return std::move(last_version).error();
  const std::size_t last_events = detail::event_count(header(last, detail::hdr_events));
  if (!heads_from_leader(st))
    return read_range_from(st, subject, after, last_seq, *last_version, last_events,
                           [&](msg_ptr& m, std::uint64_t seq) { return sink(m.get(), seq); });
  version_chain chain(after, *last_version, last_events, expected_previous(last));
  msg_ptr held;  // followed, its sequence not yet confirmed
  std::uint64_t held_seq = 0, handed = after;
  auto hand_over_held = [&]() -> result<void> {
    if (!held) return success();
    auto r = sink(held.get(), held_seq);
    handed = held_seq;
    held.reset();
    return r;
  };
  auto checked = [&](msg_ptr& m, std::uint64_t seq) -> result<void> {
    if (!chain.follows(m.get(), seq))
      return make_error(errc::internal, "read {}: sequence {} does not follow", subject, seq);
    if (auto r = hand_over_held(); !r) return r;
    held = std::move(m);
    held_seq = seq;
    return success();
  };
  auto r = read_range_from(st, subject, after, last_seq, *last_version, last_events, checked);
  if (r && chain.complete()) return hand_over_held();
  if (!r && !chain.broken()) return r;  // the sink's own error, or the read's
  // The leader's commits are handed over as it has them: it is the authority (a stream written
  // with the plain subject expectation on R3 can hold a version twice: ADR 0015).
  log()->warn(
      "read {}: the commits a replica handed over do not lead to the head's version {} at "
      "sequence {} (a replica behind or drifted, or a version stored twice): reading from "
      "sequence {} from the stream leader",
      subject, *last_version, last_seq, handed + 1);
  return read_from_leader(st, subject, handed + 1, last_seq,
                          [&](msg_ptr& m, std::uint64_t seq) { return sink(m.get(), seq); });
}

}  // namespace jetsource::detail::store
