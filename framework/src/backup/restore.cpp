// jetsource::restore: the whole file checked first, then the target stream checked (empty, or a
// prefix of this backup, or the stream an incremental backup continues), created with the
// recorded configuration, and every commit published in order, pipelined, each expecting the
// stream's last sequence.
#include <jetsource/backup.hpp>
#include <jetsource/event_store.hpp>

#include "backup/format.hpp"
#include "backup/stream_io.hpp"
#include "log.hpp"
#include "nats/handles.hpp"
#include "wire/headers.hpp"

#include <chrono>
#include <memory>
#include <mutex>

namespace jetsource {

namespace detail::backup {

namespace {

constexpr const char* hdr_expected_last_seq = "Nats-Expected-Last-Sequence";

// The outcome of the publishes, written by nats.c's ack handler thread, read by the restoring
// thread (under `mutex`).
struct publish_outcome {
  std::mutex mutex;
  std::uint64_t acked = 0;
  std::optional<error> first_error;
};

// nats.c's ack handler: owns `msg`. Each ack must name the sequence after the one the message
// expected; a duplicate (an id the server had seen) would have been dropped, so it is an error.
void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  msg_ptr owned(msg);
  auto* out = static_cast<publish_outcome*>(closure);
  const std::string expected = header(msg, hdr_expected_last_seq);
  std::optional<error> e;
  if (pa == nullptr) {
    natsStatus s = pae ? pae->Err : NATS_ERR;
    e = nats_error(s, "restore", pae ? pae->ErrCode : static_cast<jsErrCode>(0));
    e->message =
        fmt::format("restore: publish to {} after sequence {}: {}", natsMsg_GetSubject(msg),
                    expected, pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(s));
  } else if (pa->Duplicate || std::to_string(pa->Sequence - 1) != expected) {
    e = make_error(errc::conflict,
                   "restore: the commit after sequence {} (id {}) was stored as {}{}", expected,
                   header(msg, hdr_msg_id), pa->Sequence,
                   pa->Duplicate ? " (a duplicate id, not stored again)" : "");
  }
  std::lock_guard lock(out->mutex);
  ++out->acked;
  if (e && !out->first_error) out->first_error = std::move(e);
}

bool same_message(natsMsg* m, const record& r) {
  const char* d = natsMsg_GetData(m);
  return natsMsg_GetSubject(m) == r.subject && header(m, hdr_msg_id) == r.header(hdr_msg_id) &&
         std::string_view(d ? d : "", static_cast<std::size_t>(natsMsg_GetDataLength(m))) == r.body;
}

// Where the restore starts: how many records of the file the target already holds (0: all to
// publish). Refuses a target this file does not continue.
result<std::uint64_t> records_present(jsCtx* js, const std::string& name, const scan_result& s,
                                      const std::optional<stream_state>& target,
                                      std::uint64_t base) {
  const auto& info = s.info;
  if (!target) {
    if (!info.previous) return 0;
    return make_error(errc::conflict,
                      "restore into {}: there is no such stream; this incremental backup "
                      "continues sequence {}: restore the full backup (and the incremental ones "
                      "before this) first",
                      name, info.previous->sequence);
  }
  const std::uint64_t last = target->last_sequence;
  if (last == base) {
    if (!info.previous) return 0;
    JETSOURCE_TRY(m, message_at(js, name, last));
    if (m && natsMsg_GetSubject(m.get()) == info.previous->subject &&
        identity_of(m.get()) == info.previous->msg_id)
      return 0;
  } else if (last > base && s.kept) {
    JETSOURCE_TRY(m, message_at(js, name, last));
    if (m && same_message(m.get(), *s.kept)) return last - base;  // an interrupted restore
  }
  if (!info.previous)
    return make_error(errc::conflict,
                      "restore into {}: the stream already has {} messages (last sequence {}) "
                      "that are not the start of this backup; restore only into an empty stream "
                      "or a new stream name",
                      name, target->messages, last);
  return make_error(errc::conflict,
                    "restore into {}: the stream ends at sequence {}, but this incremental "
                    "backup continues sequence {} (subject {}, id {})",
                    name, last, info.previous->sequence, info.previous->subject,
                    info.previous->msg_id);
}

result<void> create_stream(const connection& conn, const std::string& name,
                           const backup_stream_config& c) {
  store_options o;
  o.stream = name;
  o.subject_prefix = c.subject_prefix;
  o.partitions = c.partitions;
  o.replicas = c.replicas;
  o.duplicate_window = std::chrono::duration_cast<std::chrono::seconds>(c.duplicate_window);
  auto s = event_store::open(conn, o);  // creates it, or verifies it is the recorded one
  if (s) return success();
  auto e = std::move(s).error();
  if (e.message.find("jetstream error 10065") != std::string::npos)  // subjects overlap
    return make_error(errc::conflict,
                      "restore into {}: another stream on this server already takes the subjects "
                      "{}.> (restore under a new name on another server, or remove that stream): "
                      "{}",
                      name, c.subject_prefix, e.message);
  return e;
}

result<msg_ptr> message_of(const record& r, std::uint64_t expected_last) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, r.subject.c_str(), nullptr, r.body.data(),
                                static_cast<int>(r.body.size()));
  msg_ptr m(raw);
  for (const auto& [k, v] : r.headers)
    if (s == NATS_OK && !k.starts_with("Nats-Expected-"))
      s = natsMsgHeader_Add(m.get(), k.c_str(), v.c_str());
  if (s == NATS_OK)
    s = natsMsgHeader_Set(m.get(), hdr_expected_last_seq, std::to_string(expected_last).c_str());
  if (s != NATS_OK) return nats_error(s, fmt::format("restore: build message {}", r.sequence));
  return m;
}

// A JetStream context for pipelined publishes (at most 1024 awaiting their acks), reporting each
// ack to `outcome`.
result<js_ptr> publisher(const connection_state& cs, const restore_options& o,
                         publish_outcome* outcome) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = o.ack_timeout.count();
  jo.PublishAsync.MaxPending = 1024;
  jo.PublishAsync.StallWait = o.ack_timeout.count();
  jo.PublishAsync.AckHandler = &on_ack;
  jo.PublishAsync.AckHandlerClosure = outcome;
  jsCtx* raw = nullptr;
  if (auto s = natsConnection_JetStream(&raw, cs.nc.get(), &jo); s != NATS_OK)
    return nats_error(s, "restore: JetStream context");
  return js_ptr(raw);
}

// Publishes the records after the first `skip`, the first to land after `last`.
result<restore_summary> publish_all(const connection_state& cs, const std::filesystem::path& path,
                                    const restore_options& o, std::uint64_t skip,
                                    std::uint64_t last, std::uint64_t total) {
  // On the heap: nats.c's ack thread writes it, possibly after a wait for the last acks gave up.
  auto outcome = std::make_shared<publish_outcome>();
  JETSOURCE_TRY(js, publisher(cs, o, outcome.get()));
  JETSOURCE_TRY(reader, file_reader::open(path));
  restore_summary out;
  backup_progress p{0, total, 0};
  auto shown = std::chrono::steady_clock::now();
  std::uint64_t n = 0;
  std::optional<error> failed;
  for (;;) {
    auto r = reader.next();
    if (!r) {
      failed = std::move(r).error();  // the file changed since it was checked
      break;
    }
    if (!*r) break;
    if (++n <= skip) continue;
    {
      std::lock_guard lock(outcome->mutex);
      if (outcome->first_error) break;
    }
    const record& rec = **r;
    auto m = message_of(rec, last);
    if (!m) {
      failed = std::move(m).error();
      break;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = o.ack_timeout.count();
    natsMsg* raw = m->release();
    if (auto s = js_PublishMsgAsync(js.get(), &raw, &po); s != NATS_OK) {
      natsMsg_Destroy(raw);  // still ours when nats.c did not take it
      failed = nats_error(s, fmt::format("restore: publish {}", rec.subject));
      break;
    }
    if (out.first_sequence == 0) out.first_sequence = last + 1;
    ++last;
    out.renumbered = out.renumbered || last != rec.sequence;
    ++out.records;
    p.done = skip + out.records;
    p.bytes = reader.offset();
    if (o.progress && std::chrono::steady_clock::now() - shown > std::chrono::milliseconds{100}) {
      shown = std::chrono::steady_clock::now();
      o.progress(p);
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = o.ack_timeout.count() * 2;
  natsStatus s = js_PublishAsyncComplete(js.get(), &po);
  if (s != NATS_OK) {
    js.reset();
    // Acks may still arrive on nats.c's thread: keep what the handler touches alive.
    new std::shared_ptr<publish_outcome>(outcome);  // NOLINT: deliberate leak, see above
  }
  std::lock_guard lock(outcome->mutex);
  if (outcome->first_error) return *outcome->first_error;
  if (failed) return *failed;
  if (s != NATS_OK) return nats_error(s, "restore: wait for the last acks");
  out.last_sequence = last;
  if (o.progress) o.progress(p);
  return out;
}

}  // namespace

}  // namespace detail::backup

result<restore_summary> restore(const connection& conn, const std::filesystem::path& path,
                                const restore_options& options) {
  namespace b = detail::backup;
  const auto started = std::chrono::steady_clock::now();
  const auto& cs = detail::state_of(conn);
  if (!cs || !cs->nc) return make_error(errc::invalid_argument, "restore: no connection");
  // The header names the stream; the target's state says which record to keep for the
  // continuation check; then the whole file is checked before anything is written.
  std::string name;
  {
    JETSOURCE_TRY(reader, b::file_reader::open(path));
    name = options.stream.empty() ? reader.info().stream.name : options.stream;
  }
  JETSOURCE_TRY(validate_token("stream name", name));
  JETSOURCE_TRY(target, b::stream_info(cs->js.get(), name));
  JETSOURCE_TRY(head, b::file_reader::open(path));
  const std::uint64_t base = head.info().previous ? head.info().previous->sequence : 0;
  const std::uint64_t keep =
      target && target->last_sequence > base ? target->last_sequence - base : 0;
  JETSOURCE_TRY(scanned, b::scan(path, keep));
  const auto& info = scanned.info;
  if (info.repeated_msg_id)
    return make_error(errc::invalid_argument,
                      "restore from {}: two commits share the Nats-Msg-Id {} (a command id reused "
                      "after the duplicate window); published again within one window the server "
                      "would drop the second: not restored (see docs/operations.md)",
                      path.string(), *info.repeated_msg_id);
  JETSOURCE_TRY(skip, b::records_present(cs->js.get(), name, scanned, target, base));
  JETSOURCE_TRY(b::create_stream(conn, name, info.stream));
  const std::uint64_t last = target ? target->last_sequence : 0;
  JETSOURCE_TRY(out, b::publish_all(*cs, path, options, skip, last, info.records));
  out.stream = name;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (out.records == 0)
    detail::log()->info("restore of {}: {} already holds all its commits (up to sequence {})",
                        path.string(), name, out.last_sequence);
  else
    detail::log()->info("restored {} commits of {} into {} (sequences {}..{}{})", out.records,
                        path.string(), name, out.first_sequence, out.last_sequence,
                        out.renumbered ? ", renumbered: the original had gaps" : "");
  return out;
}

}  // namespace jetsource
