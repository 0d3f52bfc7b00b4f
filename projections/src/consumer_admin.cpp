// detail: consumer administration for the read side (see consumer_admin.hpp).
#include "consumer_admin.hpp"

#include "files.hpp"
#include "log.hpp"

#include <nats/nats.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

namespace jetsource::detail {

namespace {

// Writes `name` to `file` unless it exists (link(2) of a finished temp file: a concurrent
// creator's name wins and is returned).
result<std::string> create_once(const path& file, const std::string& name) {
  auto tmp = with_suffix(file, fmt::format(".{}", ::getpid()));
  JETSOURCE_TRY(write_text(tmp, name));
  int rc = ::link(tmp.c_str(), file.c_str());
  int err = errno;
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  if (rc == 0) return name;
  if (err == EEXIST)
    if (auto existing = read_text(file)) return *existing;
  return make_error(errc::io, "cannot create {}: {}", file.string(), std::strerror(err));
}

// `o` waiting `timeout` for the answer (the context's prefix and the rest as they are); nullptr,
// the context's options, for 0.
jsOptions* with_timeout(jsOptions& o, std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return nullptr;
  jsOptions_Init(&o);
  o.Wait = timeout.count();
  return &o;
}

}  // namespace

result<std::optional<std::string>> copy_consumer(const projection& p, const projector_options& o,
                                                 bool create) {
  if (!o.consumer.empty()) return std::optional<std::string>(o.consumer);
  const auto file = with_suffix(o.database, ".consumer");
  if (auto known = read_text(file)) return known;
  if (!create) return std::optional<std::string>();
  std::random_device random;
  auto name = fmt::format("jetsource-{}-{:08x}", p.name(), random());
  JETSOURCE_TRY(made, create_once(file, name));
  return std::optional<std::string>(std::move(made));
}

result<std::string> live_consumer(const projection& p, const projector_options& o) {
  JETSOURCE_TRY(name, copy_consumer(p, o, true));
  return std::move(*name);
}

result<std::string> rebuild_consumer(const projection& p, const projector_options& o) {
  JETSOURCE_TRY(live, live_consumer(p, o));
  return live + "-rebuild";
}

result<void> delete_consumer(connection_state& c, const std::string& stream,
                             const std::string& consumer,
                             std::chrono::milliseconds request_timeout) {
  jsOptions o;
  jsErrCode code{};
  natsStatus s = js_DeleteConsumer(c.js.get(), stream.c_str(), consumer.c_str(),
                                   with_timeout(o, request_timeout), &code);
  if (s == NATS_OK || s == NATS_NOT_FOUND || code == JSConsumerNotFoundErr) return success();
  return nats_error(s, "delete consumer " + consumer, code);
}

result<void> create_consumer(connection_state& c, const std::string& stream,
                             const consumer_spec& spec) {
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = spec.name.c_str();
  cfg.Description = spec.description;
  cfg.AckPolicy = spec.ack_policy;
  if (spec.ack_policy != js_AckNone) {
    cfg.AckWait = std::chrono::nanoseconds(spec.ack_wait).count();
    if (spec.max_ack_pending > 0) cfg.MaxAckPending = spec.max_ack_pending;
  }
  cfg.MaxDeliver = -1;  // MaxDeliver exhausted is a silent skip: the engine decides
  cfg.FilterSubject = spec.filter.empty() ? nullptr : spec.filter.c_str();
  if (spec.inactive_threshold.count() > 0)
    cfg.InactiveThreshold = std::chrono::nanoseconds(spec.inactive_threshold).count();
  if (spec.disposable) cfg.Replicas = 1;
  cfg.MemoryStorage = spec.disposable || spec.in_memory;
  if (spec.start > 1) {
    cfg.DeliverPolicy = js_DeliverByStartSequence;
    cfg.OptStartSeq = spec.start;
  } else {
    cfg.DeliverPolicy = js_DeliverAll;
  }
  jsConsumerInfo* created = nullptr;
  jsErrCode code{};
  jsOptions o;
  natsStatus a = js_AddConsumer(&created, c.js.get(), stream.c_str(), &cfg,
                                with_timeout(o, spec.request_timeout), &code);
  jsConsumerInfo_Destroy(created);
  if (a == NATS_OK) return success();
  if (code == JSStreamNotFoundErr)
    return make_error(errc::not_found, "{}: stream {} does not exist", spec.owner, stream);
  return nats_error(a, "create consumer " + spec.name, code);
}

ack_mode ack_mode_for(const projector_options& o) {
  if (o.unacknowledged) return ack_mode::none;
  return o.cumulative_acks ? ack_mode::cumulative : ack_mode::each;
}

namespace {

jsAckPolicy policy_of(ack_mode acks) {
  switch (acks) {
    case ack_mode::each:
      return js_AckExplicit;
    case ack_mode::cumulative:
      return js_AckAll;
    case ack_mode::none:
      return js_AckNone;
  }
  return js_AckExplicit;
}

ack_mode mode_of(jsAckPolicy policy) {
  if (policy == js_AckAll) return ack_mode::cumulative;
  return policy == js_AckNone ? ack_mode::none : ack_mode::each;
}

}  // namespace

result<void> create_consumer(connection_state& c, const std::string& stream,
                             const std::string& name, const projection& p,
                             const projector_options& o, ack_mode acks, std::uint64_t from) {
  consumer_spec spec;
  spec.name = name;
  spec.filter = p.subject_filter();
  spec.ack_policy = policy_of(acks);
  spec.start = from;
  spec.ack_wait = o.ack_wait;
  spec.max_ack_pending = static_cast<std::int64_t>(o.max_buffered);
  spec.in_memory = o.consumer_in_memory;
  spec.owner = "projection " + p.name();
  return create_consumer(c, stream, spec);
}

result<ack_mode> bind_consumer(connection_state& c, const std::string& consumer,
                               const projection& p, const projector_options& o,
                               std::uint64_t applied) {
  consumer_info_ptr holder;
  auto ci = consumer_info(c, o.stream, consumer, holder);
  if (!ci && !ci.error().is(errc::not_found)) return std::move(ci).error();
  ack_mode acks = ack_mode_for(o);
  bool create = !ci;
  if (ci) {
    const jsConsumerInfo& info = **ci;
    std::string_view filter = info.Config->FilterSubject ? info.Config->FilterSubject : "";
    if (filter != p.subject_filter())
      return make_error(errc::stream_config_mismatch,
                        "consumer {} follows '{}' but projection {} follows '{}': delete the "
                        "consumer (the projection resumes from its database)",
                        consumer, filter, p.name(), p.subject_filter());
    // The consumer says how it is acked: a start with other options keeps its policy.
    acks = mode_of(info.Config->AckPolicy);
    if (!consumer_follows(info, applied)) {
      log()->info(
          "projection {}: consumer {} does not continue from the database's mark {} (ack floor "
          "{}, start {}): recreating it from sequence {}",
          p.name(), consumer, applied, info.AckFloor.Stream, info.Config->OptStartSeq, applied + 1);
      create = true;
    } else if (info.NumAckPending > 0) {
      // Deliveries of an earlier run (one that stopped without waiting for its last pull, or
      // crashed) would come back only after AckWait, and with AckPolicy All one ack would cover
      // them with what this run commits: start over from the database's mark instead (dedup
      // skips repeats).
      create = true;
    }
    if (create) {
      JETSOURCE_TRY(delete_consumer(c, o.stream, consumer));
    }
  }
  if (create) {
    JETSOURCE_TRY(create_consumer(c, o.stream, consumer, p, o, acks, applied + 1));
  }
  return acks;
}

namespace {

bool names_a_cluster(const jsStreamInfo& si) {
  return si.Cluster != nullptr && si.Cluster->Name != nullptr && *si.Cluster->Name;
}

}  // namespace

std::optional<std::uint64_t> trusted_backlog(bool clustered, const jsConsumerInfo& ci) {
  if (clustered && (ci.Cluster == nullptr || ci.Cluster->Leader == nullptr || !*ci.Cluster->Leader))
    return std::nullopt;
  return ci.NumPending + static_cast<std::uint64_t>(ci.NumAckPending);
}

bool consumer_drained(const jsStreamInfo& si, const jsConsumerInfo& ci) {
  return trusted_backlog(names_a_cluster(si), ci) == std::uint64_t{0};
}

result<jsConsumerInfo*> consumer_info(connection_state& c, const std::string& stream,
                                      const std::string& consumer, consumer_info_ptr& holder) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode code{};
  natsStatus s =
      js_GetConsumerInfo(&ci, c.js.get(), stream.c_str(), consumer.c_str(), nullptr, &code);
  if (s != NATS_OK) {
    if (code == JSConsumerNotFoundErr || s == NATS_NOT_FOUND)
      return make_error(errc::not_found, "consumer {} does not exist", consumer);
    if (code == JSStreamNotFoundErr)
      return make_error(errc::not_found, "stream {} does not exist", stream);
    return nats_error(s, "consumer info of " + consumer, code);
  }
  holder.reset(ci);
  return ci;
}

result<stream_identity> identify_stream(connection_state& c, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode code{};
  natsStatus s = js_GetStreamInfo(&si, c.js.get(), stream.c_str(), nullptr, &code);
  if (s == NATS_NO_RESPONDERS)
    return make_error(errc::unreachable,
                      "stream {}: no JetStream answered (is the server running with JetStream "
                      "enabled, -js?)",
                      stream);
  if (s != NATS_OK) {
    if (code == JSStreamNotFoundErr || s == NATS_NOT_FOUND)
      return make_error(errc::not_found, "stream {} does not exist", stream);
    return nats_error(s, "stream info of " + stream, code);
  }
  stream_info_ptr holder(si);
  stream_identity out{si->Created, si->State.LastSeq, {}, names_a_cluster(*si)};
  if (si->Config != nullptr && si->Config->SubjectsLen == 1)
    out.filter_all = si->Config->Subjects[0];
  return out;
}

result<void> check_stream(const projection& p, const std::string& stream, std::int64_t recorded,
                          std::uint64_t max_sequence, const stream_identity& now) {
  if (recorded != 0 && recorded != now.created)
    return make_error(errc::stream_config_mismatch,
                      "projection {}: stream {} was deleted and created again (or its server "
                      "lost its store) since this read model was built: the model holds messages "
                      "of the old stream up to sequence {}, the new one ends at {}. Rebuild it "
                      "from the stream as it is now (`projections rebuild {}`), or restore the "
                      "old stream",
                      p.name(), stream, max_sequence, now.last_sequence, p.name());
  if (max_sequence > now.last_sequence)
    return make_error(errc::stream_config_mismatch,
                      "projection {}: the read model has applied stream {} up to sequence {}, "
                      "but the stream ends at {}: the server lost messages (a store restored "
                      "from an older copy?). Rebuild it (`projections rebuild {}`) or restore "
                      "the stream",
                      p.name(), stream, max_sequence, now.last_sequence, p.name());
  return success();
}

bool consumer_follows(const jsConsumerInfo& ci, std::uint64_t applied) {
  // Acks come after commits, so a consumer of this file never acknowledged more than it holds:
  // an ack floor beyond the mark belongs to another file (or to a crash between the ack and
  // the mark's next write; then starting over from the mark costs a few duplicates).
  if (ci.AckFloor.Stream > 0) return ci.AckFloor.Stream <= applied;
  // Nothing acknowledged yet (nats-server 2.9 reports ack floor 0 until the first ack, whatever
  // the start): where was it told to start?
  const jsConsumerConfig* cfg = ci.Config;
  if (cfg == nullptr) return false;
  std::uint64_t start = 0;
  if (cfg->DeliverPolicy == js_DeliverAll) start = 1;
  if (cfg->DeliverPolicy == js_DeliverByStartSequence) start = cfg->OptStartSeq;
  return start == applied + 1;
}

result<std::uint64_t> messages_after(connection_state& c, const std::string& stream,
                                     const stream_identity& s, const std::string& filter,
                                     std::uint64_t applied) {
  if (s.last_sequence <= applied) return std::uint64_t{0};
  if (filter.empty() || filter == s.filter_all) return s.last_sequence - applied;
  // Part of the stream: the server counts the matching messages for a consumer starting there.
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.AckPolicy = js_AckNone;
  cfg.FilterSubject = filter.c_str();
  cfg.DeliverPolicy = js_DeliverByStartSequence;
  cfg.OptStartSeq = applied + 1;
  cfg.InactiveThreshold = std::chrono::nanoseconds(std::chrono::seconds(10)).count();
  jsConsumerInfo* ci = nullptr;
  jsErrCode code{};
  natsStatus st = js_AddConsumer(&ci, c.js.get(), stream.c_str(), &cfg, nullptr, &code);
  if (st != NATS_OK) return nats_error(st, "count pending messages of " + stream, code);
  consumer_info_ptr holder(ci);
  std::uint64_t pending = ci->NumPending;
  js_DeleteConsumer(c.js.get(), stream.c_str(), ci->Name, nullptr, nullptr);
  return pending;
}

}  // namespace jetsource::detail
