// jetsource::backup and verify_backup: the commits from..last of a stream, `last` fixed when the
// backup begins, read in order by one ordered consumer and written to the backup file.
#include <jetsource/backup.hpp>

#include "backup/format.hpp"
#include "backup/stream_io.hpp"
#include "log.hpp"
#include "nats/handles.hpp"
#include "store/commit_message.hpp"
#include "wire/ack_subject.hpp"
#include "wire/headers.hpp"

#include <chrono>
#include <unordered_map>

namespace jetsource {

namespace detail::backup {

namespace {

using clock = std::chrono::steady_clock;

// Calls a progress callback at most every 100 ms (and when told it is the last call).
class progress_reporter {
 public:
  progress_reporter(const backup_progress_callback& cb, std::uint64_t total) : cb_(cb) {
    p_.total = total;
  }
  void update(std::uint64_t done, std::uint64_t bytes, bool last = false) {
    p_.done = done;
    p_.bytes = bytes;
    if (!cb_) return;
    auto now = clock::now();
    if (!last && now - shown_ < std::chrono::milliseconds{100}) return;
    shown_ = now;
    cb_(p_);
  }

 private:
  const backup_progress_callback& cb_;
  backup_progress p_;
  clock::time_point shown_{};
};

// The commits from..last of the stream, in order, each handed to `write`.
result<void> read_stream(const connection_state& cs, const stream_state& st, std::uint64_t from,
                         std::uint64_t last, const std::function<result<void>(record&&)>& write) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = st.config.name.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = from;
  so.Config.InactiveThreshold = std::chrono::nanoseconds{std::chrono::seconds{10}}.count();
  natsSubscription* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_SubscribeSync(&raw, cs.js.get(), st.config.subjects[0].c_str(), nullptr, &so, &jerr);
  subscription_ptr sub(raw);
  if (s != NATS_OK)
    return nats_error(s, fmt::format("back up {} (ordered consumer)", st.config.name), jerr);
  // Flow control bounds what the server sends ahead; no client-side limit on top (nats.c's default
  // 65 536 messages would drop a burst of small ones as a slow consumer).
  natsSubscription_SetPendingLimits(sub.get(), -1, -1);
  const auto wait = std::max<std::int64_t>(cs.options.request_timeout.count(), 5000);
  for (;;) {
    natsMsg* next = nullptr;
    s = natsSubscription_NextMsg(&next, sub.get(), wait);
    msg_ptr m(next);
    if (s != NATS_OK) {
      retire(cs.nc.get(), std::move(sub));  // deletes the ordered consumer
      return nats_error(s, fmt::format("back up {}: read from sequence {}", st.config.name, from));
    }
    const char* reply = natsMsg_GetReply(m.get());
    auto meta = reply ? parse_ack_subject(reply) : std::nullopt;
    if (!meta) continue;  // not a stream message
    if (meta->n.stream_sequence > last) break;
    record r;
    r.sequence = meta->n.stream_sequence;
    r.time_ns = static_cast<std::int64_t>(meta->n.timestamp);
    r.subject = natsMsg_GetSubject(m.get());
    r.headers = headers_of(m.get());
    if (const char* d = natsMsg_GetData(m.get())) r.body.assign(d, natsMsg_GetDataLength(m.get()));
    if (auto w = write(std::move(r)); !w) {
      retire(cs.nc.get(), std::move(sub));  // deletes the ordered consumer
      return w;
    }
    if (meta->n.stream_sequence == last) break;
    // Nothing pending before `last`: it was deleted (in a stream that allows it) if the server
    // no longer has it; then every message up to it was delivered.
    if (meta->n.pending == 0) {
      auto at_last = message_at(cs.js.get(), st.config.name, last);
      if (at_last && !*at_last) break;
    }
  }
  retire(cs.nc.get(), std::move(sub));  // deletes the ordered consumer
  return success();
}

}  // namespace

result<scan_result> scan(const std::filesystem::path& path, std::uint64_t keep) {
  JETSOURCE_TRY(reader, file_reader::open(path));
  const std::string prefix = reader.info().stream.subject_prefix + ".";
  std::unordered_map<std::string, std::uint64_t> ids;  // Nats-Msg-Id -> sequence
  std::optional<std::string> repeated;
  scan_result out;
  for (std::uint64_t n = 1;; ++n) {
    JETSOURCE_TRY(r, reader.next());
    if (!r) break;
    if (!r->subject.starts_with(prefix))
      return make_error(errc::corrupt,
                        "backup file {} is damaged (refused, nothing written): record at sequence "
                        "{} has subject {}, outside the stream's {}>",
                        path.string(), r->sequence, r->subject, prefix);
    auto id = r->header(hdr_msg_id);
    if (!id.empty() && !repeated) {
      auto [it, fresh] = ids.emplace(std::string(id), r->sequence);
      if (!fresh)
        repeated = fmt::format("'{}' at sequences {} and {}", id, it->second, r->sequence);
    }
    if (n == keep) out.kept = std::move(r).value();
  }
  out.info = reader.info();
  out.info.repeated_msg_id = std::move(repeated);
  return out;
}

}  // namespace detail::backup

result<backup_summary> backup(const connection& conn, std::string_view stream,
                              const std::filesystem::path& path, const backup_options& options) {
  namespace b = detail::backup;
  const auto started = std::chrono::steady_clock::now();
  const auto& cs = detail::state_of(conn);
  if (!cs || !cs->nc) return make_error(errc::invalid_argument, "backup: no connection");
  const std::string name(stream);
  if (options.from_sequence == 0)
    return make_error(errc::invalid_argument, "backup of {}: from sequence 0 (the first is 1)",
                      name);
  JETSOURCE_TRY(found, b::stream_info(cs->js.get(), name));
  if (!found) return make_error(errc::not_found, "backup: there is no stream {}", name);
  const b::stream_state st = *found;
  const std::uint64_t from = options.from_sequence, last = st.last_sequence;
  if (from > last + 1)
    return make_error(errc::invalid_argument,
                      "backup of {}: from sequence {} is past the stream's next sequence {}", name,
                      from, last + 1);
  backup_info info;
  info.version = static_cast<int>(b::format_version);
  info.created = detail::store::timestamp_now();
  info.stream = st.config;
  info.from_sequence = from;
  info.last_sequence = last;
  if (from > 1) {
    JETSOURCE_TRY(prev, b::message_at(cs->js.get(), name, from - 1));
    if (!prev)
      return make_error(errc::not_found,
                        "incremental backup of {} from {}: there is no message at sequence {} to "
                        "continue from",
                        name, from, from - 1);
    info.previous =
        backup_previous{from - 1, natsMsg_GetSubject(prev.get()), b::identity_of(prev.get())};
  }
  JETSOURCE_TRY(writer, b::file_writer::create(path));
  JETSOURCE_TRY(writer.write_header(info));
  b::trailer t;
  b::progress_reporter progress(options.progress, last >= from ? last - from + 1 : 0);
  if (last >= from) {
    JETSOURCE_TRY(b::read_stream(*cs, st, from, last, [&](b::record&& r) -> result<void> {
      JETSOURCE_TRY(writer.write_record(r));
      if (t.records++ == 0) t.first_sequence = r.sequence;
      t.last_sequence = r.sequence;
      progress.update(r.sequence - from + 1, writer.bytes());
      return success();
    }));
  }
  JETSOURCE_TRY(sum, writer.finish(t));
  progress.update(last >= from ? last - from + 1 : 0, writer.bytes(), true);
  backup_summary out{
      name,      path,
      from,      last,
      t.records, writer.bytes(),
      sum,       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()};
  detail::log()->info("backed up {} sequences {}..{} ({} commits, {} bytes) to {}", name, from,
                      last, t.records, out.bytes, path.string());
  return out;
}

result<backup_info> verify_backup(const std::filesystem::path& path) {
  JETSOURCE_TRY(s, detail::backup::scan(path));
  return std::move(s.info);
}

}  // namespace jetsource
