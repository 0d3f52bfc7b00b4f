// The event store's snapshots: one disposable message per aggregate on the companion stream
// <stream>_SNAPSHOTS; a deleted snapshot stream turns them off for a while, never fails a load.
#include <jetsource/event_store.hpp>

#include "log.hpp"
#include "store/async_publisher.hpp"
#include "store/commit_message.hpp"
#include "store/ids.hpp"
#include "store/reads.hpp"
#include "store/store_state.hpp"
#include "wire/headers.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace jetsource {

namespace {

using detail::header;
using detail::msg_ptr;
using detail::store_state;
using detail::store::last_on_subject;
using detail::store::message_builder;
using detail::store::parse_u64;
using detail::store::publish_async;
using detail::store::timestamp_now;

result<std::string> make_snapshot_subject(const store_state& st, std::string_view type,
                                          std::string_view id) {
  if (auto r = validate_token("aggregate type", type); !r) return std::move(r).error();
  if (auto r = validate_token("aggregate id", id); !r) return std::move(r).error();
  return fmt::format("{}.{}.{}", st.snapshot_prefix, type, id);
}

// Snapshots are optional: a deleted snapshot stream is noticed (a direct get to it times out on
// nats-server 2.9.10, or finds no responders) and then not asked for a while.
constexpr auto snapshot_wait = std::chrono::milliseconds{1000};
constexpr auto snapshot_recheck = std::chrono::seconds{30};

bool snapshots_off(const store_state& st) {
  return std::chrono::steady_clock::now().time_since_epoch().count() <
         st.snapshots_missing_until.load(std::memory_order_relaxed);
}

// After a failed snapshot request: true (and snapshots off for a while) when the snapshot
// stream is gone.
bool snapshot_stream_gone(const store_state& st) {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, st.js.get(), st.snapshot_stream.c_str(), nullptr, &jerr);
  jsStreamInfo_Destroy(raw);
  if (s != NATS_NOT_FOUND) return false;
  auto until = std::chrono::steady_clock::now() + snapshot_recheck;
  st.snapshots_missing_until.store(until.time_since_epoch().count(), std::memory_order_relaxed);
  detail::log()->warn("snapshot stream {} is missing: snapshots off (rechecked every {} s)",
                      st.snapshot_stream, snapshot_recheck.count());
  return true;
}

// A snapshot message's headers and body; nullopt (and a warning) for a malformed one.
std::optional<event_store::snapshot> snapshot_of(natsMsg* m, const std::string& subject) {
  auto version = parse_u64(header(m, detail::hdr_version));
  auto sequence = parse_u64(header(m, detail::hdr_snapshot_sequence));
  auto schema = parse_u64(header(m, detail::hdr_snapshot_schema));
  if (!version || !sequence || !schema) {
    detail::log()->warn("ignoring malformed snapshot on {}", subject);
    return std::nullopt;
  }
  event_store::snapshot s;
  s.version = *version;
  s.sequence = *sequence;
  s.schema = static_cast<int>(*schema);
  if (const char* d = natsMsg_GetData(m)) s.body.assign(d, natsMsg_GetDataLength(m));
  return s;
}

}  // namespace

result<std::optional<event_store::snapshot>> event_store::load_snapshot(
    std::string_view aggregate_type, std::string_view aggregate_id) {
  auto subject = make_snapshot_subject(*state_, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  if (snapshots_off(*state_)) return std::optional<snapshot>{};
  auto last = last_on_subject(*state_, state_->snapshot_stream, *subject, snapshot_wait);
  if (!last) {
    // The (disposable) snapshot stream may be gone: the store works without it.
    if ((last.error().is(errc::unreachable) || last.error().is(errc::timeout)) &&
        snapshot_stream_gone(*state_))
      return std::optional<snapshot>{};
    return std::move(last).error();
  }
  if (!*last) return std::optional<snapshot>{};
  return snapshot_of(last->get(), *subject);
}

result<event_store::head_and_snapshot> event_store::load_head_and_snapshot(
    std::string_view aggregate_type, std::string_view aggregate_id) {
  auto& st = *state_;
  auto subject = subject_of(aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  head_and_snapshot out;
  if (snapshots_off(st)) {  // the snapshot stream is gone: the head alone
    auto h = head(aggregate_type, aggregate_id);
    if (!h) return std::move(h).error();
    out.head = std::move(h).value();
    return out;
  }
  auto snap_subject = make_snapshot_subject(st, aggregate_type, aggregate_id);
  if (!snap_subject) return std::move(snap_subject).error();
  auto got = detail::store::last_on_subjects(
      st, {{st.options.stream, *subject, st.conn->options.request_timeout,
            detail::store::heads_from_leader(st)},
           {st.snapshot_stream, *snap_subject, snapshot_wait}});
  if (!got[0]) return std::move(got[0]).error();
  if (msg_ptr& m = got[0].value()) {
    auto h = detail::store::head_of(m.get());
    if (!h) return std::move(h).error();
    out.head = std::move(h).value();
  }
  if (!got[1]) {
    // As in load_snapshot: a gone snapshot stream turns snapshots off; other errors fail.
    auto& e = got[1].error();
    if ((e.is(errc::unreachable) || e.is(errc::timeout)) && snapshot_stream_gone(st)) return out;
    return std::move(got[1]).error();
  }
  if (msg_ptr& m = got[1].value()) out.snap = snapshot_of(m.get(), *snap_subject);
  return out;
}

result<void> event_store::save_snapshot(std::string_view aggregate_type,
                                        std::string_view aggregate_id, const snapshot& s) {
  auto& st = *state_;
  auto subject = make_snapshot_subject(st, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  if (s.schema < 0)
    return make_error(errc::invalid_argument, "snapshot of {}: negative schema", *subject);
  if (snapshots_off(st)) return success();
  std::string id = new_commit_id();
  message_builder b(*subject, s.body);
  b.set(detail::hdr_msg_id, id);
  b.set(detail::hdr_aggregate_type, std::string(aggregate_type));
  b.set(detail::hdr_aggregate_id, std::string(aggregate_id));
  b.set(detail::hdr_version, std::to_string(s.version));
  b.set(detail::hdr_snapshot_sequence, std::to_string(s.sequence));
  b.set(detail::hdr_snapshot_schema, std::to_string(s.schema));
  b.set(detail::hdr_timestamp, timestamp_now());
  auto m = b.build(st.conn->nc.get());
  if (!m) return std::move(m).error();
  return publish_async(st, std::move(m).value(), id, {{}, s.version, *subject});
}

}  // namespace jetsource
