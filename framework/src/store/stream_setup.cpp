// The event store's stream set-up: event_store::open creates the event stream and its snapshot
// stream, or verifies them (a mismatch names every difference; nothing is ever changed), and
// makes the store's two JetStream contexts.
#include <jetsource/event_store.hpp>

#include "log.hpp"
#include "nats/handles.hpp"
#include "nats/probe.hpp"
#include "store/async_publisher.hpp"
#include "store/ids.hpp"
#include "store/store_state.hpp"
#include "store/stream_names.hpp"
#include "wire/headers.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetsource {

namespace {

using detail::nats_error;
using detail::store::parse_u64;

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

using detail::retention_name;
using detail::storage_name;

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

result<detail::js_ptr> make_js(natsConnection* nc, jsOptions& jo, std::string_view what) {
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, nc, &jo);
  detail::js_ptr p(js);
  if (s != NATS_OK) return nats_error(s, what);
  return p;
}

// The concurrency scheme of a store (ADR 0015). On a replicated stream the per-subject
// expectation is only safe when every node runs nats-server >= 2.9.21 (nats-server#4320); the
// versions come from the INFO lines of the servers at the connection's URLs and of the cluster
// members they name. A server that does not answer counts as too old.
concurrency_scheme choose_scheme(const connection_options& co, const store_options& o) {
  using cs = concurrency_scheme;
  if (o.concurrency != cs::automatic && (o.concurrency == cs::commit_slot || o.replicas == 1))
    return o.concurrency;
  if (o.concurrency == cs::automatic && o.replicas == 1) return cs::subject_sequence;
  auto servers = detail::server_identities(co.urls, std::chrono::milliseconds{500});
  std::vector<std::string> named;
  bool all_fixed = !servers.empty();
  for (const auto& s : servers) {
    named.push_back(fmt::format("{} {}", s.name.empty() ? s.url : s.name, s.version));
    all_fixed = all_fixed && detail::version_at_least(s.version, 2, 9, 21);
  }
  const std::string versions = named.empty() ? "no server answered" : join(named, ", ");
  if (o.concurrency == cs::subject_sequence) {
    if (!all_fixed)
      detail::log()->warn(
          "stream {} has {} replicas and the subject-sequence concurrency scheme, which is not "
          "safe on replicated streams before nats-server 2.9.21 (nats-server#4320; servers: {})",
          o.stream, o.replicas, versions);
    return cs::subject_sequence;
  }
  auto chosen = all_fixed ? cs::subject_sequence : cs::commit_slot;
  detail::log()->info("stream {} ({} replicas): {} concurrency scheme (servers: {})", o.stream,
                      o.replicas, all_fixed ? "subject-sequence" : "commit-slot", versions);
  return chosen;
}

}  // namespace

result<event_store> event_store::open(const connection& conn, store_options options) {
  if (auto r = detail::store::check_options(options); !r) return std::move(r).error();
  const auto& cs = detail::state_of(conn);
  if (!cs || !cs->nc) return make_error(errc::invalid_argument, "open store: no connection");
  if (natsConnection_IsClosed(cs->nc.get()))
    return make_error(errc::unreachable, "open store {}: the connection is closed", options.stream);

  auto st = std::make_shared<detail::store_state>();
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

  st->scheme = choose_scheme(cs->options, o);

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
  ao.PublishAsync.AckHandler = &detail::store::on_async_ack;
  ao.PublishAsync.AckHandlerClosure = st->async.get();
  auto ajs = make_js(cs->nc.get(), ao, "create async JetStream context");
  if (!ajs) return std::move(ajs).error();
  st->js_async = std::move(ajs).value();
  return event_store(std::move(st));
}

const store_options& event_store::options() const noexcept {
  return state_->options;
}

}  // namespace jetsource
