// The event store's sync append: publish, wait for the PubAck, and tell an idempotent retry
// (already_appended) from a conflict. Under the commit-slot scheme (ADR 0015) a duplicate ack
// is either: the stored message at the acked sequence carries our commit id, or another commit
// decided on the same version took the slot (a conflict).
#include <jetsource/event_store.hpp>

#include "nats/handles.hpp"
#include "store/commit_message.hpp"
#include "store/ids.hpp"
#include "store/reads.hpp"
#include "store/store_state.hpp"
#include "wire/headers.hpp"

#include <string>
#include <utility>

namespace jetsource {

namespace {

using detail::header;
using detail::nats_error;
using detail::store_state;
using detail::store::build_commit;
using detail::store::built_commit;
using detail::store::commit_id_of;
using detail::store::direct_get;
using detail::store::get_from_leader;
using detail::store::head_message;
using detail::store::parse_u64;
using detail::store::version_of;

// The message a duplicate ack points at: from the leader on a replicated stream (a replica's
// direct get may not have applied it yet), else by direct get.
result<detail::msg_ptr> stored_at(const store_state& st, const built_commit& b,
                                  std::uint64_t sequence) {
  if (st.options.replicas > 1 || b.slot) return get_from_leader(st, sequence);
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.Sequence = sequence;
  return direct_get(st.js.get(), st.options.stream, o,
                    fmt::format("check duplicate commit {} at sequence {}", b.commit_id, sequence));
}

// A duplicate ack only says that *some* message in the window had this Nats-Msg-Id. Check that it
// is this aggregate's commit (a command id reused for another aggregate must not pass silently)
// and, for a commit slot, that it is this commit (else another writer won the slot: a conflict).
result<append_result> resolve_duplicate(const store_state& st, const built_commit& b,
                                        const commit& c, std::uint64_t sequence) {
  auto m = stored_at(st, b, sequence);
  if (!m) return std::move(m).error();
  std::uint64_t version = c.version;
  if (*m) {
    const char* landed_on = natsMsg_GetSubject(m->get());
    if (landed_on && b.subject != landed_on)
      return make_error(errc::invalid_argument,
                        "commit id {} was already used by the commit at sequence {} on {}, not {}",
                        b.commit_id, sequence, landed_on, b.subject);
    if (b.slot && commit_id_of(m->get()) != b.commit_id)
      return make_error(errc::conflict,
                        "append to {}: another commit decided on version {} was stored first, at "
                        "sequence {} (expected {})",
                        b.subject, c.version - detail::event_count(c.event_types), sequence,
                        c.expected_sequence.value_or(0));
    auto v = version_of(m->get(), sequence);
    if (v) version = *v;
  } else if (b.slot) {
    return make_error(errc::timeout,
                      "append to {}: the server answered duplicate at sequence {}, which the "
                      "stream leader does not have yet (retry with the same commit id)",
                      b.subject, sequence);
  }
  return append_result{sequence, version, append_status::already_appended, b.commit_id};
}

// After a wrong-last-sequence answer: did this very commit land earlier (a re-send whose first
// send was stored, the aggregate having moved on since)? The server stored it only while the
// expected sequence was its subject's last, so only the subject's first message after that
// sequence can be it: one direct get, however many commits came after (a presumed-new command,
// ADR 0020, expects 0 and would otherwise read the aggregate's whole history). On a 1-replica
// stream with the subject-sequence scheme the duplicate check comes first on the server, so only
// the subject's last message needs a look.
result<std::optional<append_result>> landed_earlier(const store_state& st, const built_commit& b,
                                                    const commit& c, natsMsg* last) {
  const auto ours = [&](natsMsg* m) -> std::optional<append_result> {
    if (m == nullptr || commit_id_of(m) != b.commit_id) return std::nullopt;
    auto v = version_of(m);
    return append_result{detail::store::reply_sequence(m), v ? *v : c.version,
                         append_status::already_appended, b.commit_id};
  };
  if (auto mine = ours(last)) return mine;
  if (st.options.replicas == 1 && !b.slot) return std::optional<append_result>{};
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.Sequence = c.expected_sequence.value_or(0) + 1;
  o.NextBySubject = b.subject.c_str();
  auto first = direct_get(st.js.get(), st.options.stream, o,
                          fmt::format("read {} from sequence {}", b.subject, o.Sequence));
  if (!first) return std::move(first).error();
  return ours(first->get());
}

}  // namespace

result<append_result> event_store::append(const commit& c) {
  auto& st = *state_;
  auto built = build_commit(st, c);
  if (!built) return std::move(built).error();
  const std::string& subject = built->subject;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = st.options.ack_timeout.count();
  jsPubAck* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const auto sent = std::chrono::steady_clock::now();
  natsStatus s = js_PublishMsg(&raw, st.js.get(), built->msg.get(), &po, &jerr);
  detail::pub_ack_ptr pa(raw);
  if (s == NATS_OK && pa && !pa->Duplicate)
    return append_result{pa->Sequence, c.version, append_status::appended, built->commit_id,
                         built->state};
  if (s == NATS_OK && pa) return resolve_duplicate(st, *built, c, pa->Sequence);
  if (s == NATS_OK)
    return make_error(errc::internal, "append to {}: no ack from the server", subject);
  if (s == NATS_TIMEOUT) {
    // The server drops a publish this user may not make and says so only on the side: no ack
    // comes. A timeout is then that refusal (not worth a retry), whatever the ack timeout.
    if (auto why = st.conn->refused.about(fmt::format("\"{}\"", subject), sent))
      return detail::permission_refused(fmt::format("append to {}", subject), *why);
  }
  if (jerr != JSStreamWrongLastSequenceErr)
    return nats_error(s, fmt::format("append to {}", subject), jerr);

  // 10071. On a replicated stream the stream leader checks the expectation before the
  // duplicate: a re-send of a commit that landed comes back as a conflict.
  const char* text_raw = nats_GetLastError(nullptr);
  std::string text = text_raw ? text_raw : "wrong last sequence";
  auto last = head_message(st, subject);
  auto earlier = landed_earlier(st, *built, c, last && *last ? last->get() : nullptr);
  if (earlier && *earlier) return std::move(**earlier);
  std::uint64_t actual = last && *last ? detail::store::reply_sequence(last->get()) : 0;
  if (auto pos = text.rfind(": "); pos != std::string::npos)
    if (auto n = parse_u64(text.substr(pos + 2)); n) actual = *n;  // the server's view

  return make_error(errc::conflict, "append to {}: wrong last sequence: {} (expected {})", subject,
                    actual, c.expected_sequence.value_or(0));
}

concurrency_scheme event_store::scheme() const noexcept {
  return state_->scheme;
}

}  // namespace jetsource
