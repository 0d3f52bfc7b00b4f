// The event store's commit message: subjects, timestamps, header checks, the message of a commit.
#include <jetsource/event_store.hpp>

#include <jetsource/detail/utf8.hpp>

#include "store/commit_message.hpp"
#include "store/ids.hpp"
#include "wire/headers.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

namespace jetsource {

std::size_t stored_commit::event_count() const {
  return detail::event_count(event_types);
}

result<std::string> event_store::subject_of(std::string_view aggregate_type,
                                            std::string_view aggregate_id) const {
  return detail::store::make_subject(state_->options, aggregate_type, aggregate_id);
}

namespace detail::store {

namespace {

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

// The body with the aggregate's state as its last member (ADR 0022):
// {"events":[...],"state":<state>}. Only for a JSON object body; the state must be UTF-8.
result<std::string> body_with_state(std::string_view subject, const commit& c) {
  if (c.state_schema < 1 || c.state.empty())
    return make_error(errc::invalid_argument,
                      "commit to {}: a state needs a schema >= 1 and a JSON value (schema {}, {} "
                      "bytes)",
                      subject, c.state_schema, c.state.size());
  std::string_view body = c.body;
  while (!body.empty() &&
         (body.back() == ' ' || body.back() == '\n' || body.back() == '\r' || body.back() == '\t'))
    body.remove_suffix(1);
  if (!c.content_type.starts_with("application/json") || !body.starts_with('{') ||
      !body.ends_with('}'))
    return make_error(errc::invalid_argument,
                      "commit to {}: a state can only ride in a JSON object body", subject);
  if (auto bad = detail::first_invalid_utf8(c.state); bad != std::string_view::npos)
    return make_error(errc::invalid_argument,
                      "commit to {}: its state is not valid UTF-8 (byte {} is \\x{:02x})", subject,
                      bad, static_cast<unsigned char>(c.state[bad]));
  // The stream keeps it forever: a state that is not one JSON value would break every reader.
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> ignore;
  rapidjson::MemoryStream in(c.state.data(), c.state.size());
  if (reader.Parse(in, ignore).IsError())
    return make_error(errc::invalid_argument,
                      "commit to {}: its state is not one JSON value (at byte {})", subject,
                      reader.GetErrorOffset());
  body.remove_suffix(1);
  const bool members = body.find_first_not_of(" \n\r\t", 1) != std::string_view::npos;
  std::string out;
  out.reserve(body.size() + c.state.size() + 11);
  out.append(body).append(members ? ",\"state\":" : "\"state\":").append(c.state).push_back('}');
  return out;
}

}  // namespace

// The date-and-seconds part is formatted once per second per thread.
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

result<std::string> make_subject(const store_options& o, std::string_view type,
                                 std::string_view id) {
  if (auto r = validate_token("aggregate type", type); !r) return std::move(r).error();
  if (auto r = validate_token("aggregate id", id); !r) return std::move(r).error();
  return fmt::format("{}.{}.{}.{}", o.subject_prefix, type, fnv1a32(id) % o.partitions, id);
}

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
  const bool generated = c.commit_id.empty();
  std::string id = generated ? new_commit_id() : c.commit_id;
  const std::pair<std::string_view, std::string_view> values[] = {
      {"commit id", id},
      {"event types", c.event_types},
      {"content type", c.content_type},
      {"correlation id", c.correlation_id},
      {"causation id", c.causation_id}};
  for (auto [what, value] : values)
    if (auto r = check_header_value(what, value); !r) return std::move(r).error();
  if (auto r = check_body(*subject, c); !r) return std::move(r).error();

  // The commit-slot scheme (ADR 0015) needs the version the commit was decided on; a commit
  // without a concurrency check gets no slot.
  const auto events = detail::event_count(c.event_types);
  const bool slot = st.scheme == concurrency_scheme::commit_slot && c.expected_sequence;
  if (slot && c.version < events)
    return make_error(errc::invalid_argument,
                      "commit to {}: version {} but {} events (the version after a commit counts "
                      "every event so far)",
                      *subject, c.version, events);
  std::string with_state;  // the body with the state, when the commit carries one
  if (c.state_schema != 0 || !c.state.empty()) {
    auto body = body_with_state(*subject, c);
    if (!body) return std::move(body).error();
    with_state = std::move(body).value();
  }
  message_builder b(*subject, with_state.empty() ? std::string_view(c.body) : with_state);
  if (slot) {
    b.set(detail::hdr_msg_id, commit_slot(c.aggregate_type, c.aggregate_id, c.version - events));
    b.set_ref(detail::hdr_commit_id, id);
  } else if (generated) {
    // An id made here can never be sent again (the caller does not know it before the answer),
    // so the server's duplicate table would keep it for nothing: one entry per commit for the
    // whole window, whose growth stalled publishes for up to 0.6 s at 10,000 commits/s (ADR 0019).
    b.set_ref(detail::hdr_commit_id, id);
  } else {
    b.set_ref(detail::hdr_msg_id, id);
  }
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
  bool state = !with_state.empty();
  if (state) {
    b.set(detail::hdr_state_schema, std::to_string(c.state_schema));
    // The state is an optimisation: a commit too large with it is stored without it.
    if (!b.fits(st.conn->nc.get())) {
      b.drop_last(c.body);
      state = false;
    }
  }
  std::string hint;
  if (b.header_size() > max_header_bytes)
    hint = fmt::format(
        " (Es-Events names {} events: split the command's events over several "
        "commits)",
        detail::event_count(c.event_types));
  auto m = b.build(st.conn->nc.get(), hint);
  if (!m) return std::move(m).error();
  return built_commit{std::move(m).value(), std::move(subject).value(), std::move(id), slot, state};
}

std::string commit_slot(std::string_view type, std::string_view id, std::uint64_t base_version) {
  return fmt::format("{}.{}@{}", type, id, base_version);
}

}  // namespace detail::store

}  // namespace jetsource
