// The event store's reads of one aggregate's subject: the head (from the stream leader on a
// replicated stream), then the commits before it (range_reads.cpp), and the reaper that deletes
// finished ordered consumers off the reader's path.
#include <jetsource/event_store.hpp>

#include "log.hpp"
#include "nats/reply_inboxes.hpp"
#include "store/commit_message.hpp"
#include "store/ids.hpp"
#include "store/reads.hpp"
#include "store/store_state.hpp"
#include "thread_name.hpp"
#include "wire/ack_subject.hpp"
#include "wire/header_block.hpp"
#include "wire/headers.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace jetsource {

namespace detail {

subscription_reaper::~subscription_reaper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void subscription_reaper::add(natsConnection* nc, subscription_ptr sub) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({nc, std::move(sub)});
    if (!thread_.joinable())
      thread_ = std::thread([this] {
        name_this_thread("js-sub-reaper");
        run();
      });
  }
  wake_.notify_one();
}

// Takes whatever is queued at once: each is unsubscribed (deleting its consumer), and a single
// flush per batch covers them all before they are destroyed (see detail::retire).
void subscription_reaper::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::deque<entry> batch;
    batch.swap(queue_);
    lock.unlock();
    for (auto& e : batch) natsSubscription_Unsubscribe(e.sub.get());
    natsConnection* flushed = nullptr;
    for (auto& e : batch) {
      if (e.nc != flushed) retire(e.nc, std::move(e.sub));  // one round trip per connection
      flushed = e.nc;
    }
    batch.clear();
    lock.lock();
  }
}

}  // namespace detail

namespace detail::store {

result<msg_ptr> direct_get(jsCtx* js, const std::string& stream, jsDirectGetMsgOptions& o,
                           std::string_view what, std::chrono::milliseconds wait) {
  natsMsg* raw = nullptr;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = wait.count();  // 0: the context's
  natsStatus s = js_DirectGetMsg(&raw, js, stream.c_str(), wait.count() > 0 ? &jo : nullptr, &o);
  if (s == NATS_OK) return msg_ptr(raw);
  if (s == NATS_NOT_FOUND) return msg_ptr{};
  return nats_error(s, what);
}

result<msg_ptr> last_on_subject(const store_state& st, const std::string& stream,
                                const std::string& subject, std::chrono::milliseconds wait) {
  // What js_DirectGetMsg sends for a last-by-subject get (the subject in the request's subject,
  // no body: the permission roles grant $JS.API.DIRECT.GET.<stream>.>), as a plain request:
  // js_DirectGetMsg would turn the reply into a JetStream message first (every header copied into
  // a hash table, the time stamp parsed with sscanf: 17,000 instructions a get, more than the rest
  // of a cold load; docs/performance.md).
  // On an inbox of the store's own, on the read connection whose socket this thread reads itself
  // (nats/reply_inboxes.hpp, nats/caller_reads.hpp: no thread hand-off; two with
  // natsConnection_Request).
  const std::string api = "$JS.API.DIRECT.GET." + stream + "." + subject;
  const auto timeout = wait.count() > 0 ? wait : st.conn->options.request_timeout;
  const auto what = fmt::format("read last message of {}", subject);
  auto m = st.conn->replies->request(api, {}, timeout, what);
  if (!m) return std::move(m).error();
  // A message's status line is "NATS/1.0" alone; a status reply says "NATS/1.0 404 ...".
  if (auto block = header_block(m->get()); block && block->starts_with("NATS/1.0\r\n")) return m;
  const std::string status = header(m->get(), "Status");
  if (status.empty()) return m;
  if (status == "404") return msg_ptr{};
  return make_error(errc::server_error, "{} from {}: status {} {}", what, stream, status,
                    header(m->get(), "Description"));
}

result<msg_ptr> last_from_leader(const store_state& st, const std::string& stream,
                                 const std::string& subject, std::chrono::milliseconds wait) {
  return from_leader(
      st, {.stream = stream,
           .last_by_subject = subject,
           .what = fmt::format("read last message of {} from the stream leader", subject),
           .patience = wait.count() > 0 ? wait : st.conn->options.request_timeout});
}

result<msg_ptr> head_message(const store_state& st, const std::string& subject) {
  if (heads_from_leader(st)) return last_from_leader(st, st.options.stream, subject);
  return last_on_subject(st, st.options.stream, subject);
}

result<std::uint64_t> version_of(natsMsg* m, std::uint64_t seq) {
  auto v = parse_u64(header(m, detail::hdr_version));
  if (!v)
    return make_error(
        errc::decode_failed, "commit at sequence {} on {}: {} header {}", seq,
        natsMsg_GetSubject(m), detail::hdr_version,
        header(m, detail::hdr_version).empty() ? std::string("is missing") : v.error().message);
  return v;
}

result<std::uint64_t> version_of(natsMsg* m) {
  return version_of(m, reply_sequence(m));
}

namespace {

// The state a head carries (ADR 0022): its Es-State-Schema value and the message's body. A
// malformed schema is as good as none.
void take_state(commit_head& h, natsMsg* m, std::string_view schema_header) {
  auto schema = parse_u64(schema_header);
  if (!schema || *schema < 1 || *schema > std::numeric_limits<int>::max()) return;
  h.state_schema = static_cast<int>(*schema);
  if (const char* d = natsMsg_GetData(m)) h.body.assign(d, natsMsg_GetDataLength(m));
}

// head_of from the header block as it arrived (nullopt: ask nats.c, which also words the errors).
std::optional<commit_head> head_from_block(natsMsg* m) {
  auto block = header_block(m);
  if (!block) return std::nullopt;
  auto h = parse_commit_headers(*block);
  if (!h || h->sequence.empty()) return std::nullopt;
  auto version = parse_u64(h->version);
  auto sequence = parse_u64(h->sequence);
  if (!version || !sequence) return std::nullopt;
  commit_head out{*sequence, *version, std::string(h->commit_id.empty() ? h->msg_id : h->commit_id),
                  detail::event_count(h->events)};
  take_state(out, m, h->state_schema);
  return out;
}

}  // namespace

result<commit_head> head_of(natsMsg* m) {
  if (auto h = head_from_block(m)) return std::move(*h);
  auto v = version_of(m);
  if (!v) return std::move(v).error();
  commit_head h{reply_sequence(m), *v, commit_id_of(m),
                detail::event_count(header(m, detail::hdr_events))};
  take_state(h, m, header(m, detail::hdr_state_schema));
  return h;
}

std::string commit_id_of(natsMsg* m) {
  auto id = header(m, detail::hdr_commit_id);
  return id.empty() ? header(m, detail::hdr_msg_id) : id;
}

result<msg_ptr> get_from_leader(const store_state& st, std::uint64_t sequence,
                                std::chrono::milliseconds patience) {
  return from_leader(st,
                     {.stream = st.options.stream,
                      .sequence = sequence,
                      .what = fmt::format("read sequence {} of {}", sequence, st.options.stream),
                      .patience = patience,
                      .retry_not_found = true});
}

namespace {

// `seq`: the stream sequence (from a direct get's headers, or a consumer's metadata).
result<stored_commit> decode_commit(natsMsg* m, std::uint64_t seq) {
  auto v = version_of(m, seq);
  if (!v) return std::move(v).error();
  stored_commit c;
  c.sequence = seq;
  c.version = *v;
  c.aggregate_type = header(m, detail::hdr_aggregate_type);
  c.aggregate_id = header(m, detail::hdr_aggregate_id);
  c.commit_id = commit_id_of(m);
  c.event_types = header(m, detail::hdr_events);
  c.content_type = header(m, detail::hdr_content_type);
  c.correlation_id = header(m, detail::hdr_correlation_id);
  c.causation_id = header(m, detail::hdr_causation_id);
  c.timestamp = header(m, detail::hdr_timestamp);
  if (const char* d = natsMsg_GetData(m)) c.body.assign(d, natsMsg_GetDataLength(m));
  return c;
}

}  // namespace

}  // namespace detail::store

using detail::header;
using detail::nats_error;
using detail::store::decode_commit;
using detail::store::head_message;
using detail::store::head_of;
using detail::store::make_subject;
using detail::store::read_range;

result<std::optional<commit_head>> event_store::head(std::string_view aggregate_type,
                                                     std::string_view aggregate_id) {
  auto subject = make_subject(state_->options, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  auto last = head_message(*state_, *subject);
  if (!last) return std::move(last).error();
  if (!*last) return std::optional<commit_head>{};
  auto h = head_of(last->get());
  if (!h) return std::move(h).error();
  return std::optional<commit_head>{std::move(h).value()};
}

result<commit_log> event_store::read(std::string_view aggregate_type, std::string_view aggregate_id,
                                     std::uint64_t after_sequence) {
  auto subject = make_subject(state_->options, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  auto last = head_message(*state_, *subject);
  if (!last) return std::move(last).error();
  commit_log log;
  if (!*last) return log;
  auto h = head_of(last->get());
  if (!h) return std::move(h).error();
  log.head = std::move(h).value();
  if (log.head.sequence <= after_sequence) return log;
  const std::uint64_t last_seq = log.head.sequence;
  auto decoded_last = decode_commit(last->get(), last_seq);
  if (!decoded_last) return std::move(decoded_last).error();
  log.commits.reserve(
      static_cast<std::size_t>(std::min<std::uint64_t>(last_seq - after_sequence, 4096)));
  auto r = read_range(*state_, *subject, after_sequence, last->get(), last_seq,
                      [&](natsMsg* m, std::uint64_t seq) -> result<void> {
                        auto c = decode_commit(m, seq);
                        if (!c) return std::move(c).error();
                        log.commits.push_back(std::move(c).value());
                        return success();
                      });
  if (!r) return std::move(r).error();
  log.commits.push_back(std::move(decoded_last).value());
  return log;
}

result<commit_head> event_store::replay(std::string_view aggregate_type,
                                        std::string_view aggregate_id, std::uint64_t after_sequence,
                                        const commit_visitor& visit) {
  auto subject = make_subject(state_->options, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  auto last = head_message(*state_, *subject);
  if (!last) return std::move(last).error();
  if (!*last) return commit_head{};
  natsMsg* lm = last->get();
  auto head = head_of(lm);
  if (!head) return std::move(head).error();
  if (head->sequence <= after_sequence) return head;
  auto r = read_range(
      *state_, *subject, after_sequence, lm, head->sequence,
      [&](natsMsg* m, std::uint64_t seq) -> result<void> {
        const char* d = natsMsg_GetData(m);
        return visit(commit_view{
            seq, 0,
            std::string_view(d ? d : "", static_cast<std::size_t>(natsMsg_GetDataLength(m)))});
      });
  if (!r) return std::move(r).error();
  const char* d = natsMsg_GetData(lm);
  auto v = visit(commit_view{
      head->sequence, head->version,
      std::string_view(d ? d : "", static_cast<std::size_t>(natsMsg_GetDataLength(lm)))});
  if (!v) return std::move(v).error();
  return head;
}

result<std::uint64_t> event_store::last_sequence() {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetStreamInfo(&raw, state_->js.get(), state_->options.stream.c_str(), nullptr, &jerr);
  detail::stream_info_ptr si(raw);
  if (s != NATS_OK)
    return nats_error(s, fmt::format("stream info of {}", state_->options.stream), jerr);
  return si->State.LastSeq;
}

}  // namespace jetsource
