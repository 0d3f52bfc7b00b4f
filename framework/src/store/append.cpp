// The event store's sync append: publish, wait for the PubAck, and tell an idempotent retry
// (already_appended) from a conflict.
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
using detail::store::direct_get;
using detail::store::last_on_subject;
using detail::store::parse_u64;
using detail::store::version_of;

// A duplicate ack only says that *some* message in the window had this commit id. Check that it
// is this aggregate's commit: a command id reused for another aggregate must not pass silently.
result<append_result> already_appended(const store_state& st, const built_commit& b,
                                       std::uint64_t sequence, std::uint64_t version) {
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.Sequence = sequence;
  auto m =
      direct_get(st.js.get(), st.options.stream, o,
                 fmt::format("check duplicate commit {} at sequence {}", b.commit_id, sequence));
  if (!m) return std::move(m).error();
  if (*m) {
    const char* landed_on = natsMsg_GetSubject(m->get());
    if (landed_on && b.subject != landed_on)
      return make_error(errc::invalid_argument,
                        "commit id {} was already used by the commit at sequence {} on {}, not {}",
                        b.commit_id, sequence, landed_on, b.subject);
    auto v = version_of(m->get());
    if (v) version = *v;
  }
  return append_result{sequence, version, append_status::already_appended, b.commit_id};
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
  natsStatus s = js_PublishMsg(&raw, st.js.get(), built->msg.get(), &po, &jerr);
  detail::pub_ack_ptr pa(raw);
  if (s == NATS_OK && pa && !pa->Duplicate)
    return append_result{pa->Sequence, c.version, append_status::appended, built->commit_id};
  if (s == NATS_OK && pa) return already_appended(st, *built, pa->Sequence, c.version);
  if (s == NATS_OK)
    return make_error(errc::internal, "append to {}: no ack from the server", subject);
  if (jerr != JSStreamWrongLastSequenceErr)
    return nats_error(s, fmt::format("append to {}", subject), jerr);

  // 10071. On a replicated stream a retry of a commit that landed can come back as a conflict
  // instead of a duplicate: the subject's last message then carries our commit id.
  const char* text_raw = nats_GetLastError(nullptr);
  std::string text = text_raw ? text_raw : "wrong last sequence";
  auto last = last_on_subject(st, st.options.stream, subject);
  if (last && *last && header(last->get(), detail::hdr_msg_id) == built->commit_id) {
    auto v = version_of(last->get());
    return append_result{natsMsg_GetSequence(last->get()), v ? *v : c.version,
                         append_status::already_appended, built->commit_id};
  }
  std::uint64_t actual = last && *last ? natsMsg_GetSequence(last->get()) : 0;
  if (auto pos = text.rfind(": "); pos != std::string::npos)
    if (auto n = parse_u64(text.substr(pos + 2)); n) actual = *n;  // the server's view

  return make_error(errc::conflict, "append to {}: wrong last sequence: {} (expected {})", subject,
                    actual, c.expected_sequence.value_or(0));
}

}  // namespace jetsource
