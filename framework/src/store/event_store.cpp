// The event store on JetStream: stream set-up and verification, commits (sync and pipelined
// async), reads of one aggregate's subject, snapshots on a companion stream.
#include <jetsource/event_store.hpp>

#include <jetsource/detail/utf8.hpp>

#include "store/store_state.hpp"
#include "wire/ack_subject.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetsource {

// -- small pure helpers -------------------------------------------------------------------------

std::uint32_t fnv1a32(std::string_view s) noexcept {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string new_commit_id() {
  static constexpr std::string_view alphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  // 22 base-62 digits (~131 bits) from three 64-bit draws: 10, 10 and 2 digits per draw, each
  // draw reduced by rejection so every digit stays uniform.
  constexpr std::uint64_t limit = 839299365868340224ULL;  // 62^10: largest multiple below 2^64
  auto draw = [&] {
    std::uint64_t x;
    do x = rng();
    while (x >= limit * (UINT64_MAX / limit));
    return x % limit;
  };
  std::string id(22, '0');
  for (std::size_t i = 0; i < id.size();) {
    std::uint64_t x = draw();
    for (int k = 0; k < 10 && i < id.size(); ++k, ++i) {
      id[i] = alphabet[x % 62];
      x /= 62;
    }
  }
  return id;
}

namespace {

constexpr std::size_t max_token_bytes = 256;

// nats-server 2.9.10 refuses a message whose header block is longer than 65535 bytes
// (stream.go: len(hdr) > math.MaxUint16, JSStreamHeaderExceedsMaximumErr, error 10097).
constexpr std::size_t max_header_bytes = 65535;

// A token shown in an error message: control characters escaped (and every byte >= 0x80 when
// the token is not valid UTF-8, so the message itself stays UTF-8), long tokens shortened.
std::string printable(std::string_view s) {
  const bool utf8 = detail::is_utf8(s);
  std::size_t end = std::min<std::size_t>(s.size(), 40);
  while (utf8 && end > 0 && end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
    --end;  // not in the middle of a character
  std::string out;
  for (std::size_t i = 0; i < end; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80))
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (s.size() > end) out += "...";
  return out;
}

}  // namespace

result<void> validate_token(std::string_view what, std::string_view token) {
  if (token.empty()) return make_error(errc::invalid_id, "invalid {} '': it is empty", what);
  if (token.size() > max_token_bytes)
    return make_error(errc::invalid_id, "invalid {} '{}': it is {} bytes long (at most {})", what,
                      printable(token), token.size(), max_token_bytes);
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto c = static_cast<unsigned char>(token[i]);
    std::string_view why;
    if (c == '.')
      why = "'.' separates subject tokens";
    else if (c == '*' || c == '>')
      why = "'*' and '>' are subject wildcards";
    else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
      why = "whitespace is not allowed in a subject";
    else if (c < 0x20 || c == 0x7f)
      why = "control characters are not allowed in a subject";
    if (!why.empty())
      return make_error(errc::invalid_id, "invalid {} '{}': byte {} is {}: {}", what,
                        printable(token), i,
                        c < 0x20 || c == 0x7f ? fmt::format("\\x{:02x}", c)
                                              : fmt::format("'{}'", static_cast<char>(c)),
                        why);
  }
  if (auto bad = detail::first_invalid_utf8(token); bad != std::string_view::npos)
    return make_error(errc::invalid_id, "invalid {} '{}': byte {} (\\x{:02x}) is not valid UTF-8",
                      what, printable(token), bad, static_cast<unsigned char>(token[bad]));
  return success();
}

result<void> validate_utf8(std::string_view what, std::string_view text) {
  if (auto bad = detail::first_invalid_utf8(text); bad != std::string_view::npos)
    return make_error(errc::invalid_argument, "{} is not valid UTF-8: byte {} is \\x{:02x}", what,
                      bad, static_cast<unsigned char>(text[bad]));
  return success();
}

std::size_t stored_commit::event_count() const {
  return detail::event_count(event_types);
}

namespace detail {

namespace {

// Set while a thread runs the async ack handler: such a thread must never wait for acks (they
// are delivered by that very thread).
thread_local bool in_ack_handler = false;

}  // namespace

subscription_reaper::~subscription_reaper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void subscription_reaper::add(subscription_ptr sub) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(sub));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  wake_.notify_one();
}

void subscription_reaper::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    subscription_ptr sub = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    natsSubscription_Unsubscribe(sub.get());  // deletes the consumer (nats.c created it)
    sub.reset();
    lock.lock();
  }
}

store_state::~store_state() {
  reaper.reset();  // its subscriptions use the JetStream context
  if (async && js_async) {
    // Acks still on their way must not reach a destroyed store: wait for them (each has a
    // deadline, ack_timeout), then close the async context.
    std::unique_lock lock(async->mutex);
    auto deadline = options.ack_timeout + std::chrono::seconds{2};
    if (!in_ack_handler)
      async->changed.wait_for(lock, deadline, [this] { return async->in_flight == 0; });
    std::vector<async_core::pending> orphans;
    for (auto& [m, p] : async->by_msg) orphans.push_back(std::move(p));
    async->by_msg.clear();
    bool leftovers = async->in_flight > 0;
    lock.unlock();
    js_async.reset();
    if (leftovers) {
      // An ack handler may still be running on nats.c's thread: keep what it touches alive.
      new std::shared_ptr<async_core>(async);  // NOLINT: deliberate leak, see above
      log()->warn("event store {}: closed with {} async appends unacknowledged", options.stream,
                  orphans.size());
    }
    for (auto& p : orphans)
      if (p.done)
        p.done(make_error(errc::unreachable, "append to {}: the store was closed before its ack",
                          p.subject));
  }
  js_async.reset();
  js.reset();
}

}  // namespace detail

namespace {

using detail::header;
using detail::msg_ptr;
using detail::nats_error;
using detail::store_state;

result<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size())
    return make_error(errc::decode_failed, "'{}' is not a decimal number", printable(s));
  return v;
}

// RFC 3339, UTC, microseconds: 2026-11-22T11:28:57.123456Z. The date-and-seconds part is
// formatted once per second per thread.
std::string timestamp_now() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  auto frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  thread_local std::time_t cached_secs = -1;
  thread_local std::string prefix;  // "2026-11-22T11:28:57."
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    prefix = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  std::string out;
  out.reserve(prefix.size() + 7);
  out += prefix;
  fmt::format_to(std::back_inserter(out), "{:06}Z", frac);
  return out;
}

// A header value must not break the header block (no CR/LF or other control characters).
result<void> check_header_value(std::string_view what, std::string_view v) {
  for (unsigned char c : v)
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return make_error(errc::invalid_argument, "{} '{}' contains a control character", what,
                        printable(v));
  return validate_utf8(what, v);
}

// A body labelled JSON must be UTF-8 (RFC 8259): every JSON reader refuses anything else, and
// the stream keeps what it is given forever.
result<void> check_body(std::string_view subject, const commit& c) {
  if (!c.content_type.starts_with("application/json")) return success();
  if (auto bad = detail::first_invalid_utf8(c.body); bad != std::string_view::npos)
    return make_error(errc::invalid_argument,
                      "commit to {}: the body is labelled {} but is not valid UTF-8 (byte {} of "
                      "{} is \\x{:02x})",
                      subject, c.content_type, bad, c.body.size(),
                      static_cast<unsigned char>(c.body[bad]));
  return success();
}

result<std::string> make_subject(const store_options& o, std::string_view type,
                                 std::string_view id) {
  if (auto r = validate_token("aggregate type", type); !r) return std::move(r).error();
  if (auto r = validate_token("aggregate id", id); !r) return std::move(r).error();
  return fmt::format("{}.{}.{}.{}", o.subject_prefix, type, fnv1a32(id) % o.partitions, id);
}

result<std::string> make_snapshot_subject(const store_state& st, std::string_view type,
                                          std::string_view id) {
  if (auto r = validate_token("aggregate type", type); !r) return std::move(r).error();
  if (auto r = validate_token("aggregate id", id); !r) return std::move(r).error();
  return fmt::format("{}.{}.{}", st.snapshot_prefix, type, id);
}

// A message under construction: its headers are set on the natsMsg and counted for the size
// check (NATS/1.0 line, "Key: Value\r\n" each, blank line).
class message_builder {
 public:
  // `subject` and `body` must outlive build().
  message_builder(const std::string& subject, std::string_view body)
      : subject_(subject), body_(body) {}

  void set(const char* key, std::string value) {
    headers_.push_back({key, nullptr, std::move(value)});
  }
  /// A value that outlives build(): not copied.
  void set_ref(const char* key, const std::string& value) { headers_.push_back({key, &value, {}}); }

  /// The header block as sent: "NATS/1.0\r\n", "Key: Value\r\n" each, "\r\n".
  std::size_t header_size() const {
    std::size_t n = std::strlen("NATS/1.0\r\n") + 2;
    for (const auto& h : headers_) n += std::strlen(h.key) + 2 + h.value().size() + 2;
    return n;
  }
  std::size_t size() const { return body_.size() + header_size(); }

  // Fails with payload_too_large (nothing sent) when the message exceeds the server's limits:
  // its max payload (headers and body) and 65535 bytes of headers. `hint` ends the message.
  result<msg_ptr> build(natsConnection* nc, std::string_view hint = {}) const {
    if (header_size() > max_header_bytes)
      return make_error(errc::payload_too_large,
                        "message to {}: its headers are {} bytes, the server accepts at most {} "
                        "bytes of headers{}",
                        subject_, header_size(), max_header_bytes, hint);
    auto max = natsConnection_GetMaxPayload(nc);
    if (max > 0 && size() > static_cast<std::size_t>(max))
      return make_error(errc::payload_too_large,
                        "message to {} is {} bytes (body {} + headers), the server accepts at "
                        "most {} bytes",
                        subject_, size(), body_.size(), max);
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, subject_.c_str(), nullptr, body_.data(),
                                  static_cast<int>(body_.size()));
    msg_ptr m(raw);
    for (const auto& h : headers_)
      if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), h.key, h.value().c_str());
    if (s != NATS_OK) return nats_error(s, fmt::format("build message to {}", subject_));
    return m;
  }

  const std::string& subject() const { return subject_; }

 private:
  struct header_value {
    const char* key;
    const std::string* borrowed;  // or:
    std::string owned;
    const std::string& value() const { return borrowed ? *borrowed : owned; }
  };
  const std::string& subject_;
  std::string_view body_;
  boost::container::small_vector<header_value, 12> headers_;
};

struct built_commit {
  msg_ptr msg;
  std::string subject;
  std::string commit_id;
};

result<built_commit> build_commit(const store_state& st, const commit& c) {
  auto subject = make_subject(st.options, c.aggregate_type, c.aggregate_id);
  if (!subject) return std::move(subject).error();
  if (c.event_types.empty())
    return make_error(errc::invalid_argument, "commit to {}: no event types (Es-Events)", *subject);
  if (c.body.empty())
    return make_error(errc::invalid_argument, "commit to {}: empty body", *subject);
  if (c.version == 0)
    return make_error(errc::invalid_argument,
                      "commit to {}: version 0 (the version after a commit is at least 1)",
                      *subject);
  std::string id = c.commit_id.empty() ? new_commit_id() : c.commit_id;
  const std::pair<std::string_view, std::string_view> values[] = {
      {"commit id", id},
      {"event types", c.event_types},
      {"content type", c.content_type},
      {"correlation id", c.correlation_id},
      {"causation id", c.causation_id}};
  for (auto [what, value] : values)
    if (auto r = check_header_value(what, value); !r) return std::move(r).error();
  if (auto r = check_body(*subject, c); !r) return std::move(r).error();

  message_builder b(*subject, c.body);
  b.set_ref(detail::hdr_msg_id, id);
  b.set_ref(detail::hdr_aggregate_type, c.aggregate_type);
  b.set_ref(detail::hdr_aggregate_id, c.aggregate_id);
  b.set(detail::hdr_version, std::to_string(c.version));
  b.set_ref(detail::hdr_events, c.event_types);
  b.set_ref(detail::hdr_content_type, c.content_type);
  b.set(detail::hdr_timestamp, timestamp_now());
  if (!c.correlation_id.empty()) b.set_ref(detail::hdr_correlation_id, c.correlation_id);
  if (!c.causation_id.empty()) b.set_ref(detail::hdr_causation_id, c.causation_id);
  // nats.c treats ExpectLastSubjectSeq == 0 as "unset": "must be new" is set by hand.
  if (c.expected_sequence)
    b.set(detail::hdr_expected_subject_seq, std::to_string(*c.expected_sequence));
  std::string hint;
  if (b.header_size() > max_header_bytes)
    hint = fmt::format(
        " (Es-Events names {} events: split the command's events over several "
        "commits)",
        detail::event_count(c.event_types));
  auto m = b.build(st.conn->nc.get(), hint);
  if (!m) return std::move(m).error();
  return built_commit{std::move(m).value(), std::move(subject).value(), std::move(id)};
}

// Direct get (needs AllowDirect): the message, or nullptr when there is none (404).
result<msg_ptr> direct_get(jsCtx* js, const std::string& stream, jsDirectGetMsgOptions& o,
                           std::string_view what, std::chrono::milliseconds wait = {}) {
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
                                const std::string& subject, std::chrono::milliseconds wait = {}) {
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.LastBySubject = subject.c_str();
  return direct_get(st.js.get(), stream, o, fmt::format("read last message of {}", subject), wait);
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
  return version_of(m, natsMsg_GetSequence(m));
}

result<commit_head> head_of(natsMsg* m) {
  auto v = version_of(m);
  if (!v) return std::move(v).error();
  return commit_head{natsMsg_GetSequence(m), *v, header(m, detail::hdr_msg_id)};
}

// `seq`: the stream sequence (from a direct get's headers, or a consumer's metadata).
result<stored_commit> decode_commit(natsMsg* m, std::uint64_t seq) {
  auto v = version_of(m, seq);
  if (!v) return std::move(v).error();
  stored_commit c;
  c.sequence = seq;
  c.version = *v;
  c.aggregate_type = header(m, detail::hdr_aggregate_type);
  c.aggregate_id = header(m, detail::hdr_aggregate_id);
  c.commit_id = header(m, detail::hdr_msg_id);
  c.event_types = header(m, detail::hdr_events);
  c.content_type = header(m, detail::hdr_content_type);
  c.correlation_id = header(m, detail::hdr_correlation_id);
  c.causation_id = header(m, detail::hdr_causation_id);
  c.timestamp = header(m, detail::hdr_timestamp);
  if (const char* d = natsMsg_GetData(m)) c.body.assign(d, natsMsg_GetDataLength(m));
  return c;
}

// What a read does with each message before the subject's last one (in order): the message and
// its stream sequence. The message is only lent.
using message_sink = std::function<result<void>(natsMsg*, std::uint64_t)>;

// Direct get next-by-subject from `from`, then from each returned sequence + 1, up to (not
// including) `last_seq`; never "until not found" (that would scan the rest of the stream).
// One round trip per commit, no set-up: the fastest way to read one or two messages.
result<void> read_direct(const store_state& st, const std::string& subject, std::uint64_t from,
                         std::uint64_t last_seq, const message_sink& sink) {
  for (std::uint64_t next = from; next < last_seq;) {
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.Sequence = next;
    o.NextBySubject = subject.c_str();
    auto m = direct_get(st.js.get(), st.options.stream, o,
                        fmt::format("read {} from sequence {}", subject, next));
    if (!m) return std::move(m).error();
    if (!*m)
      return make_error(errc::internal, "read {}: no message from sequence {}, expected one at {}",
                        subject, next, last_seq);
    std::uint64_t seq = natsMsg_GetSequence(m->get());
    if (seq >= last_seq) break;
    if (auto r = sink(m->get(), seq); !r) return r;
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

// An ordered consumer (ephemeral, flow-controlled, filtered to the subject) from `from` until
// `last_seq` is delivered: ~0.3-0.4 ms to the first message, then streams. Deleted afterwards
// so a busy process does not leave thousands of idle consumers behind, by the store's reaper
// thread: the deletion's round trip (0.2 to 0.7 ms) is then not the reader's.
result<void> read_ordered(const store_state& st, const std::string& subject, std::uint64_t from,
                          std::uint64_t last_seq, const message_sink& sink) {
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
  const auto wait = st.conn->options.request_timeout.count();
  for (;;) {
    natsMsg* next = nullptr;
    s = natsSubscription_NextMsg(&next, sub.get(), wait);
    msg_ptr m(next);
    if (s != NATS_OK) {
      natsSubscription_Unsubscribe(sub.get());
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
    if (seq >= last_seq) {             // the last message is already in hand
      st.reaper->add(std::move(sub));  // deleted off the caller's path
      return success();
    }
    if (auto r = sink(m.get(), seq); !r) {
      natsSubscription_Unsubscribe(sub.get());
      return r;
    }
  }
}

// Hands the messages of `subject` with sequence in (after, last) to `sink` in order; `last` (the
// subject's last message, already in hand, with `last_version` and `last_events` from its
// headers) is the caller's. The one place that chooses how to read (measured on 2.9.10,
// /tmp/probe: direct gets win for 1-2 messages, an ordered consumer from 3).
result<void> read_range(const store_state& st, const std::string& subject, std::uint64_t after,
                        std::uint64_t last_seq, std::uint64_t last_version, std::size_t last_events,
                        const message_sink& sink) {
  // At most this many commits precede the last one in range: each holds at least one event,
  // and each takes a stream sequence.
  const std::uint64_t events_before =
      last_version >= last_events ? last_version - last_events : last_seq;
  const std::uint64_t at_most = std::min(events_before, last_seq - after - 1);
  if (at_most > 2) return read_ordered(st, subject, after + 1, last_seq, sink);
  if (at_most > 0)  // 0: the last commit is the first, or the only one after `after`
    return read_direct(st, subject, after + 1, last_seq, sink);
  return success();
}

// -- stream set-up -------------------------------------------------------------------------------

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::vector<std::string> subjects_of(const jsStreamConfig& c) {
  std::vector<std::string> out;
  for (int i = 0; i < c.SubjectsLen; ++i) out.emplace_back(c.Subjects[i] ? c.Subjects[i] : "");
  return out;
}

std::string_view storage_name(jsStorageType t) {
  return t == js_FileStorage ? "file" : "memory";
}
std::string_view retention_name(jsRetentionPolicy r) {
  switch (r) {
    case js_LimitsPolicy:
      return "limits";
    case js_InterestPolicy:
      return "interest";
    case js_WorkQueuePolicy:
      return "workqueue";
  }
  return "unknown";
}

// What an existing stream must look like; each difference is named.
struct stream_spec {
  std::string subject;
  int replicas = 1;
  bool immutable = true;  // deny delete + deny purge, no limits
  std::int64_t max_per_subject = -1;
  std::optional<std::uint32_t> partitions;
  std::optional<std::int64_t> duplicates_ns;  // the Nats-Msg-Id window retries rely on
};

std::vector<std::string> differences(const jsStreamConfig& have, const stream_spec& want) {
  std::vector<std::string> d;
  auto subjects = subjects_of(have);
  if (subjects != std::vector<std::string>{want.subject})
    d.push_back(fmt::format("subjects [{}] (want [{}])", join(subjects, ", "), want.subject));
  if (have.Storage != js_FileStorage)
    d.push_back(fmt::format("storage {} (want file)", storage_name(have.Storage)));
  if (have.Retention != js_LimitsPolicy)
    d.push_back(fmt::format("retention {} (want limits)", retention_name(have.Retention)));
  if (have.Replicas != want.replicas)
    d.push_back(fmt::format("replicas {} (want {})", have.Replicas, want.replicas));
  if (!have.AllowDirect) d.push_back("allow_direct false (want true)");
  if (have.Sealed) d.push_back("sealed (want not sealed)");
  if (have.MaxMsgs > 0) d.push_back(fmt::format("max_msgs {} (want no limit)", have.MaxMsgs));
  if (have.MaxBytes > 0) d.push_back(fmt::format("max_bytes {} (want no limit)", have.MaxBytes));
  if (have.MaxAge > 0)
    d.push_back(fmt::format("max_age {}s (want no limit)", have.MaxAge / 1'000'000'000));
  if (want.immutable) {
    if (!have.DenyDelete) d.push_back("deny_delete false (want true)");
    if (!have.DenyPurge) d.push_back("deny_purge false (want true)");
    if (have.MaxMsgsPerSubject > 0)
      d.push_back(fmt::format("max_msgs_per_subject {} (want no limit)", have.MaxMsgsPerSubject));
  } else if (have.MaxMsgsPerSubject != want.max_per_subject) {
    d.push_back(fmt::format("max_msgs_per_subject {} (want {})", have.MaxMsgsPerSubject,
                            want.max_per_subject));
  }
  if (want.duplicates_ns && have.Duplicates != *want.duplicates_ns)
    d.push_back(fmt::format("duplicate window {} ms (want {} ms)", have.Duplicates / 1'000'000,
                            *want.duplicates_ns / 1'000'000));
  if (want.partitions) {
    std::string_view desc = have.Description ? have.Description : "";
    std::optional<std::uint64_t> p;
    if (desc.starts_with(detail::description_prefix)) {
      auto v = parse_u64(desc.substr(detail::description_prefix.size()));
      if (v) p = *v;
    }
    if (!p)
      d.push_back(fmt::format("description '{}' does not record the partitions (want '{}{}')", desc,
                              detail::description_prefix, *want.partitions));
    else if (*p != *want.partitions)
      d.push_back(fmt::format("partitions {} (want {})", *p, *want.partitions));
  }
  return d;
}

// Creates the stream, or verifies the existing one (never changes it).
// A file-storage stream with limits retention and no limits, direct gets allowed. The strings
// must outlive the returned config.
jsStreamConfig file_stream(const std::string& name, const std::string& description,
                           const char* (&subjects)[1], int replicas) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Description = description.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.MaxMsgs = -1;
  cfg.MaxBytes = -1;
  cfg.MaxAge = 0;
  cfg.MaxMsgsPerSubject = -1;
  cfg.AllowDirect = true;
  cfg.Replicas = replicas;
  return cfg;
}

result<void> ensure_stream(jsCtx* js, jsStreamConfig& cfg, const stream_spec& spec) {
  const std::string name = cfg.Name;
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, js, name.c_str(), nullptr, &jerr);
  detail::stream_info_ptr si(raw);
  bool created = false;
  if (s == NATS_NOT_FOUND) {
    raw = nullptr;
    s = js_AddStream(&raw, js, &cfg, nullptr, &jerr);
    si.reset(raw);
    if (s == NATS_OK) {
      created = true;
      detail::log()->info("created stream {} (subjects {}, replicas {}{})", name, spec.subject,
                          spec.replicas,
                          cfg.Description ? fmt::format(", {}", cfg.Description) : std::string());
    } else if (jerr == JSStreamNameExistErr || jerr == JSStreamSubjectOverlapErr) {
      // Created meanwhile by another process (two processes creating the same stream at once
      // get either error); an overlap with a stream of another name stays an error.
      const natsStatus create_status = s;
      const jsErrCode create_error = jerr;
      raw = nullptr;
      s = js_GetStreamInfo(&raw, js, name.c_str(), nullptr, &jerr);
      si.reset(raw);
      if (s == NATS_NOT_FOUND) {
        s = create_status;
        jerr = create_error;
      }
    }
  }
  if (s != NATS_OK)
    return nats_error(s, fmt::format("{} stream {}", created ? "verify" : "create or verify", name),
                      jerr);
  if (!si || !si->Config)
    return make_error(errc::internal, "stream {}: the server sent no configuration", name);
  auto d = differences(*si->Config, spec);
  if (!d.empty())
    return make_error(errc::stream_config_mismatch,
                      "stream {} exists with a different configuration (not changed): {}", name,
                      join(d, "; "));
  return success();
}

void on_async_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

bool connection_closed(const store_state& st) {
  return natsConnection_IsClosed(st.conn->nc.get());
}

// Sends one message through the async context; `p.done` (if set) gets the outcome exactly once.
// Blocks while max_in_flight messages await their acks.
result<void> publish_async(store_state& st, msg_ptr msg, std::string id,
                           detail::async_core::pending p) {
  if (connection_closed(st))
    return make_error(errc::unreachable, "append to {}: the connection is closed", p.subject);
  auto& core = *st.async;
  {
    std::unique_lock lock(core.mutex);
    // A callback that appends again must not wait for acks only its own thread can deliver.
    if (!detail::in_ack_handler && core.in_flight >= core.max_in_flight) {
      auto patience = st.options.ack_timeout + std::chrono::seconds{5};
      ++core.waiting;
      bool room =
          core.space.wait_for(lock, patience, [&] { return core.in_flight < core.max_in_flight; });
      --core.waiting;
      if (!room)
        return make_error(errc::timeout,
                          "append to {}: {} async appends still awaiting their acks after {} ms",
                          p.subject, core.in_flight,
                          std::chrono::duration_cast<std::chrono::milliseconds>(patience).count());
    }
    ++core.in_flight;
    p.commit_id = std::move(id);
    core.by_msg.emplace(msg.get(), std::move(p));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = st.options.ack_timeout.count();  // nats.c reports a missing ack as a timeout
  natsMsg* raw = msg.release();
  natsStatus s = js_PublishMsgAsync(st.js_async.get(), &raw, &po);
  if (s == NATS_OK) return success();
  msg.reset(raw);  // still ours: nats.c did not take it
  std::string subject;
  {
    std::lock_guard lock(core.mutex);
    // No ack handler runs for a refused publish: take back the entry we registered.
    if (auto it = core.by_msg.find(raw); it != core.by_msg.end()) {
      subject = std::move(it->second.subject);
      core.by_msg.erase(it);
    }
    --core.in_flight;
    core.released();
  }
  return nats_error(s, fmt::format("append to {}", subject));
}

// nats.c's async ack handler (one thread per context). Owns `msg`; finds the callback by the
// message's Nats-Msg-Id and reports exactly once. A conflict is reported as is: unlike the sync
// path it does not check whether the subject's last message carries our id (that would be a
// blocking request on nats.c's delivery thread); callers retrying after errc::timeout should use
// the sync append, which resolves that case.
void on_async_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  msg_ptr owned(msg);
  auto* core = static_cast<detail::async_core*>(closure);
  std::optional<detail::async_core::pending> p;
  {
    std::lock_guard lock(core->mutex);
    if (auto it = core->by_msg.find(msg); it != core->by_msg.end()) {
      p = std::move(it->second);
      core->by_msg.erase(it);
    }
  }
  if (!p) return;  // not one of ours (or handed to its caller when the store closed)
  {
    detail::in_ack_handler = true;
    result<append_result> r = make_error(errc::internal, "no ack");
    if (pa) {
      r = append_result{pa->Sequence, p->version,
                        pa->Duplicate ? append_status::already_appended : append_status::appended,
                        std::move(p->commit_id)};
    } else {
      natsStatus s = pae ? pae->Err : NATS_ERR;
      jsErrCode code = pae ? pae->ErrCode : static_cast<jsErrCode>(0);
      std::string what = fmt::format("append to {}", p->subject);
      error e = nats_error(s, what, code);  // for its code; the text is the ack's
      const char* text = pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(s);
      e.message = fmt::format("{}: {}", what, text);
      r = std::move(e);
    }
    if (p->done) {
      try {
        p->done(std::move(r));
      } catch (const std::exception& ex) {
        detail::log()->error("append callback for {} threw: {}", p->subject, ex.what());
      } catch (...) {
        detail::log()->error("append callback for {} threw", p->subject);
      }
    } else if (!r) {
      detail::log()->warn("{}", r.error());
    }
    p.reset();  // the callback's captures go before the store may go
    detail::in_ack_handler = false;
  }
  std::lock_guard lock(core->mutex);
  --core->in_flight;
  core->released();
}

result<void> check_options(const store_options& o) {
  if (auto r = validate_token("stream name", o.stream); !r)
    return make_error(errc::invalid_argument, "{}", r.error().message);
  if (o.stream.find_first_of("/\\") != std::string::npos)
    return make_error(errc::invalid_argument, "invalid stream name '{}': no '/' or '\\'", o.stream);
  std::string_view prefix = o.subject_prefix;
  if (prefix.empty())
    return make_error(errc::invalid_argument, "invalid subject prefix '': it is empty");
  for (std::size_t start = 0;;) {
    auto dot = prefix.find('.', start);
    auto token = prefix.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (auto r = validate_token("subject prefix token", token); !r)
      return make_error(errc::invalid_argument, "subject prefix '{}': {}", o.subject_prefix,
                        r.error().message);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (o.partitions < 1) return make_error(errc::invalid_argument, "partitions must be at least 1");
  if (o.replicas < 1 || o.replicas > 5)
    return make_error(errc::invalid_argument, "replicas {} (1 to 5)", o.replicas);
  if (o.max_in_flight < 1)
    return make_error(errc::invalid_argument, "max_in_flight must be at least 1");
  if (o.ack_timeout.count() <= 0)
    return make_error(errc::invalid_argument, "ack_timeout must be positive");
  if (o.duplicate_window.count() < 0)
    return make_error(errc::invalid_argument, "duplicate_window must not be negative");
  return success();
}

result<detail::js_ptr> make_js(natsConnection* nc, jsOptions& jo, std::string_view what) {
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, nc, &jo);
  detail::js_ptr p(js);
  if (s != NATS_OK) return nats_error(s, what);
  return p;
}

}  // namespace

// -- event_store ---------------------------------------------------------------------------------

result<event_store> event_store::open(const connection& conn, store_options options) {
  if (auto r = check_options(options); !r) return std::move(r).error();
  const auto& cs = detail::state_of(conn);
  if (!cs || !cs->nc) return make_error(errc::invalid_argument, "open store: no connection");
  if (natsConnection_IsClosed(cs->nc.get()))
    return make_error(errc::unreachable, "open store {}: the connection is closed", options.stream);

  auto st = std::make_shared<store_state>();
  st->options = std::move(options);
  const auto& o = st->options;
  st->conn = cs;
  st->snapshot_stream = o.stream + "_SNAPSHOTS";
  st->snapshot_prefix = fmt::format("{}.{}", detail::snapshot_subject_root, o.stream);
  st->async = std::make_shared<detail::async_core>();
  st->async->max_in_flight = o.max_in_flight;

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = cs->options.request_timeout.count();
  auto js = make_js(cs->nc.get(), jo, "create JetStream context");
  if (!js) return std::move(js).error();
  st->js = std::move(js).value();

  if (o.replicas > 1)
    detail::log()->warn(
        "stream {} has {} replicas: the per-subject expected-sequence check (optimistic "
        "concurrency) is not safe on replicated streams before nats-server 2.9.21 "
        "(nats-server#4320); use a fixed server",
        o.stream, o.replicas);

  // The event stream: immutable history.
  const std::string subject = o.subject_prefix + ".>";
  const std::string description = fmt::format("{}{}", detail::description_prefix, o.partitions);
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig cfg = file_stream(o.stream, description, subjects, o.replicas);
  cfg.DenyDelete = true;
  cfg.DenyPurge = true;
  cfg.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(o.duplicate_window).count();
  if (auto r = ensure_stream(st->js.get(), cfg,
                             {subject, o.replicas, true, -1, o.partitions, cfg.Duplicates});
      !r)
    return std::move(r).error();

  // The snapshot stream: one (disposable) message per aggregate.
  const std::string snap_subject = st->snapshot_prefix + ".>";
  const std::string snap_description =
      fmt::format("jetsource snapshots of stream {} (disposable)", o.stream);
  const char* snap_subjects[] = {snap_subject.c_str()};
  jsStreamConfig scfg =
      file_stream(st->snapshot_stream, snap_description, snap_subjects, o.replicas);
  scfg.MaxMsgsPerSubject = 1;
  if (auto r = ensure_stream(st->js.get(), scfg, {snap_subject, o.replicas, false, 1, {}}); !r)
    return std::move(r).error();

  // The async context: its own ack handler, nats.c's limit above ours so it never stalls.
  jsOptions ao;
  jsOptions_Init(&ao);
  ao.Wait = cs->options.request_timeout.count();
  ao.PublishAsync.MaxPending = static_cast<std::int64_t>(o.max_in_flight) + 1024;
  ao.PublishAsync.StallWait = o.ack_timeout.count();
  ao.PublishAsync.AckHandler = &on_async_ack;
  ao.PublishAsync.AckHandlerClosure = st->async.get();
  auto ajs = make_js(cs->nc.get(), ao, "create async JetStream context");
  if (!ajs) return std::move(ajs).error();
  st->js_async = std::move(ajs).value();
  return event_store(std::move(st));
}

namespace {

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

result<void> event_store::append_async(commit c, append_callback done) {
  auto& st = *state_;
  auto built = build_commit(st, c);
  if (!built) return std::move(built).error();
  return publish_async(st, std::move(built->msg), std::move(built->commit_id),
                       {std::move(done), c.version, std::move(built->subject)});
}

result<void> event_store::flush(std::chrono::milliseconds timeout) {
  auto& core = *state_->async;
  if (detail::in_ack_handler)
    return make_error(errc::invalid_argument,
                      "flush called from an append callback (it would wait for itself)");
  std::unique_lock lock(core.mutex);
  if (!core.changed.wait_for(lock, timeout, [&] { return core.in_flight == 0; }))
    return make_error(errc::timeout,
                      "flush: {} async appends still awaiting their acks after {} ms",
                      core.in_flight, timeout.count());
  return success();
}

result<std::optional<commit_head>> event_store::head(std::string_view aggregate_type,
                                                     std::string_view aggregate_id) {
  auto subject = make_subject(state_->options, aggregate_type, aggregate_id);
  if (!subject) return std::move(subject).error();
  auto last = last_on_subject(*state_, state_->options.stream, *subject);
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
  auto last = last_on_subject(*state_, state_->options.stream, *subject);
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
  auto r =
      read_range(*state_, *subject, after_sequence, last_seq, decoded_last->version,
                 decoded_last->event_count(), [&](natsMsg* m, std::uint64_t seq) -> result<void> {
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
  auto last = last_on_subject(*state_, state_->options.stream, *subject);
  if (!last) return std::move(last).error();
  if (!*last) return commit_head{};
  natsMsg* lm = last->get();
  auto head = head_of(lm);
  if (!head) return std::move(head).error();
  if (head->sequence <= after_sequence) return head;
  const std::size_t last_events = detail::event_count(header(lm, detail::hdr_events));
  auto r = read_range(
      *state_, *subject, after_sequence, head->sequence, head->version, last_events,
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
  natsMsg* m = last->get();
  auto version = parse_u64(header(m, detail::hdr_version));
  auto sequence = parse_u64(header(m, detail::hdr_snapshot_sequence));
  auto schema = parse_u64(header(m, detail::hdr_snapshot_schema));
  if (!version || !sequence || !schema) {
    detail::log()->warn("ignoring malformed snapshot at sequence {} on {}", natsMsg_GetSequence(m),
                        *subject);
    return std::optional<snapshot>{};
  }
  snapshot s;
  s.version = *version;
  s.sequence = *sequence;
  s.schema = static_cast<int>(*schema);
  if (const char* d = natsMsg_GetData(m)) s.body.assign(d, natsMsg_GetDataLength(m));
  return std::optional<snapshot>{std::move(s)};
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

result<std::string> event_store::subject_of(std::string_view aggregate_type,
                                            std::string_view aggregate_id) const {
  return make_subject(state_->options, aggregate_type, aggregate_id);
}

const store_options& event_store::options() const noexcept {
  return state_->options;
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
