// detail: a reactor group's KV bucket and its values (see group_bucket.hpp).
#include "reactors/group_bucket.hpp"

#include "wire/headers.hpp"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace jetsource::detail {

namespace {

using nlohmann::json;

// nats.c reports a refused compare-and-set as a plain error whose text names the server's
// "wrong last sequence" (JSStreamWrongLastSequenceErr).
error kv_error(natsStatus s, std::string_view what) {
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && std::strstr(last, "wrong last sequence") != nullptr)
    return make_error(errc::conflict, "{}: changed meanwhile ({})", what, last);
  return nats_error(s, what);
}

template <class F>
result<json> parse(std::string_view text, std::string_view what, F&& fill) {
  try {
    auto j = json::parse(text);
    fill(j);
    return j;
  } catch (const std::exception& x) {
    return make_error(errc::decode_failed, "reactor bucket: bad {} value: {}", what, x.what());
  }
}

}  // namespace

result<stream_facts> read_stream_facts(connection_state& c, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode code{};
  natsStatus s = js_GetStreamInfo(&si, c.js.get(), stream.c_str(), nullptr, &code);
  if (s != NATS_OK) {
    if (code == JSStreamNotFoundErr || s == NATS_NOT_FOUND)
      return make_error(errc::not_found, "stream {} does not exist", stream);
    return nats_error(s, "stream info of " + stream, code);
  }
  stream_info_ptr holder(si);
  stream_facts f;
  f.created = si->Created;
  f.last_sequence = si->State.LastSeq;
  if (si->Config != nullptr) {
    if (si->Config->SubjectsLen == 1) f.subject = si->Config->Subjects[0];
    f.replicas = si->Config->Replicas;
    f.duplicates_ns = si->Config->Duplicates;
    std::string_view desc = si->Config->Description ? si->Config->Description : "";
    if (desc.starts_with(description_prefix)) {
      desc.remove_prefix(description_prefix.size());
      std::from_chars(desc.data(), desc.data() + desc.size(), f.partitions);
    }
  }
  if (f.partitions == 0 || !f.subject.ends_with(".>"))
    return make_error(errc::stream_config_mismatch,
                      "stream {} is not a jetsource event store (no partition count in its "
                      "description, or not one subject '<prefix>.>')",
                      stream);
  return f;
}

std::string encode(const group_meta& m) {
  return json{{"stream", m.stream},         {"stream_created", m.stream_created},
              {"partitions", m.partitions}, {"mode", m.mode},
              {"filter", m.filter},         {"first_sequence", m.first_sequence},
              {"format", m.format}}
      .dump();
}

std::string encode(const member_value& m) {
  return json{{"instance", m.instance}, {"incarnation", m.incarnation},
              {"host", m.host},         {"pid", m.pid},
              {"lease_ms", m.lease_ms}, {"partitions", m.partitions},
              {"position", m.position}, {"pending", m.pending}}
      .dump();
}

std::string encode(const lease_value& l) {
  return json{{"holder", l.holder},
              {"incarnation", l.incarnation},
              {"epoch", l.epoch},
              {"checkpoint", l.checkpoint},
              {"updated_at", l.updated_at}}
      .dump();
}

std::string encode(const park_value& p) {
  const auto& a = p.a;
  return json{{"partition", a.partition},
              {"aggregate_type", a.aggregate_type},
              {"aggregate_id", a.aggregate_id},
              {"sequence", a.sequence},
              {"version", a.version},
              {"event_type", a.event_type},
              {"error", a.error},
              {"attempts", a.attempts},
              {"first_failed_at", a.first_failed_at},
              {"last_failed_at", a.last_failed_at},
              {"request", a.request},
              {"epoch", p.epoch}}
      .dump();
}

result<group_meta> decode_meta(std::string_view text) {
  group_meta m;
  JETSOURCE_TRY(parse(text, "meta", [&](const json& j) {
    m.stream = j.at("stream");
    m.stream_created = j.at("stream_created");
    m.partitions = j.at("partitions");
    m.mode = j.at("mode");
    m.filter = j.at("filter");
    m.first_sequence = j.at("first_sequence");
    m.format = j.value("format", 1);
  }));
  return m;
}

result<member_value> decode_member(std::string_view text) {
  member_value m;
  JETSOURCE_TRY(parse(text, "member", [&](const json& j) {
    m.instance = j.at("instance");
    m.incarnation = j.value("incarnation", "");
    m.host = j.value("host", "");
    m.pid = j.value("pid", 0L);
    m.lease_ms = j.value("lease_ms", std::int64_t{0});
    m.partitions = j.value("partitions", std::vector<std::uint32_t>{});
    m.position = j.value("position", std::uint64_t{0});
    m.pending = j.value("pending", std::uint64_t{0});
  }));
  return m;
}

result<lease_value> decode_lease(std::string_view text) {
  lease_value l;
  JETSOURCE_TRY(parse(text, "lease", [&](const json& j) {
    l.holder = j.at("holder");
    l.incarnation = j.value("incarnation", "");
    l.epoch = j.at("epoch");
    l.checkpoint = j.at("checkpoint");
    l.updated_at = j.value("updated_at", "");
  }));
  return l;
}

result<park_value> decode_park(std::string_view text) {
  park_value p;
  JETSOURCE_TRY(parse(text, "park", [&](const json& j) {
    auto& a = p.a;
    a.partition = j.at("partition");
    a.aggregate_type = j.at("aggregate_type");
    a.aggregate_id = j.at("aggregate_id");
    a.sequence = j.at("sequence");
    a.version = j.at("version");
    a.event_type = j.value("event_type", "");
    a.error = j.value("error", "");
    a.attempts = j.value("attempts", 0);
    a.first_failed_at = j.value("first_failed_at", "");
    a.last_failed_at = j.value("last_failed_at", "");
    a.request = j.value("request", "");
    p.epoch = j.value("epoch", std::uint64_t{0});
  }));
  return p;
}

std::string lease_key(std::uint32_t p) {
  return fmt::format("lease.{}", p);
}
std::string member_key(std::string_view instance) {
  return fmt::format("member.{}", instance);
}
std::string park_key(std::uint32_t p, std::string_view type, std::string_view id) {
  return fmt::format("park.{}.{}.{}", p, type, id);
}

std::optional<std::uint32_t> partition_of_key(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix) || key.size() <= prefix.size() || key[prefix.size()] != '.')
    return std::nullopt;
  key.remove_prefix(prefix.size() + 1);
  std::uint32_t p = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), p);
  if (ec != std::errc{} || (end != key.data() + key.size() && *end != '.')) return std::nullopt;
  return p;
}

result<void> validate_reactor_name(std::string_view what, std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
      });
  if (!ok)
    return make_error(errc::invalid_argument,
                      "{} '{}': use 1-64 letters, digits, '_' and '-' (it names a KV bucket and "
                      "consumers)",
                      what, name);
  return success();
}

std::string bucket_name(std::string_view stream, std::string_view reactor) {
  return fmt::format("jsr-{}-{}", stream, reactor);
}

result<group_bucket> group_bucket::open(const std::shared_ptr<connection_state>& c,
                                        std::string_view stream, std::string_view reactor,
                                        bool create, int replicas) {
  auto name = bucket_name(stream, reactor);
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, c->js.get(), name.c_str());
  if (s == NATS_NOT_FOUND && !create)
    return make_error(errc::not_found, "reactor {} never ran on stream {} (no bucket {})", reactor,
                      stream, name);
  if (s == NATS_NOT_FOUND) {
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = name.c_str();
    cfg.Description = "jetsource reactor group (ADR 0014)";
    cfg.History = 1;
    cfg.StorageType = js_FileStorage;
    cfg.Replicas = replicas;
    s = js_CreateKeyValue(&kv, c->js.get(), &cfg);
  }
  if (s != NATS_OK) return nats_error(s, "open reactor bucket " + name);
  return group_bucket(c, kv_ptr(kv), std::move(name));
}

result<std::optional<group_bucket::entry>> group_bucket::get(const std::string& key) const {
  kvEntry* e = nullptr;
  natsStatus s = kvStore_Get(&e, kv_.get(), key.c_str());
  if (s == NATS_NOT_FOUND) return std::optional<entry>();
  if (s != NATS_OK) return nats_error(s, "read " + key + " of " + name_);
  kv_entry_ptr holder(e);
  return std::optional<entry>(
      entry{std::string(kvEntry_ValueString(e), static_cast<std::size_t>(kvEntry_ValueLen(e))),
            kvEntry_Revision(e), kvEntry_Created(e)});
}

result<std::uint64_t> group_bucket::create(const std::string& key, std::string_view value) const {
  std::uint64_t rev = 0;
  natsStatus s =
      kvStore_Create(&rev, kv_.get(), key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) return kv_error(s, "create " + key + " in " + name_);
  return rev;
}

result<std::uint64_t> group_bucket::update(const std::string& key, std::string_view value,
                                           std::uint64_t revision) const {
  std::uint64_t rev = 0;
  natsStatus s = kvStore_Update(&rev, kv_.get(), key.c_str(), value.data(),
                                static_cast<int>(value.size()), revision);
  if (s != NATS_OK) return kv_error(s, "update " + key + " in " + name_);
  return rev;
}

result<std::uint64_t> group_bucket::put(const std::string& key, std::string_view value) const {
  std::uint64_t rev = 0;
  natsStatus s =
      kvStore_Put(&rev, kv_.get(), key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) return kv_error(s, "put " + key + " in " + name_);
  return rev;
}

result<void> group_bucket::remove_if(const std::string& key, std::uint64_t revision) const {
  // nats.c 3.4.1 has no delete with an expected revision: a KV delete is a message with
  // KV-Operation: DEL on the key's subject, and the expectation is the usual header.
  natsMsg* m = nullptr;
  auto subject = fmt::format("$KV.{}.{}", name_.substr(0), key);
  if (natsStatus s = natsMsg_Create(&m, subject.c_str(), nullptr, nullptr, 0); s != NATS_OK)
    return nats_error(s, "delete " + key);
  msg_ptr holder(m);
  natsMsgHeader_Set(m, "KV-Operation", "DEL");
  natsMsgHeader_Set(m, hdr_expected_subject_seq, std::to_string(revision).c_str());
  jsPubAck* pa = nullptr;
  jsErrCode code{};
  natsStatus s = js_PublishMsg(&pa, conn_->js.get(), m, nullptr, &code);
  jsPubAck_Destroy(pa);
  if (s == NATS_OK) return success();
  if (code == JSStreamWrongLastSequenceErr)
    return make_error(errc::conflict, "delete {} in {}: changed meanwhile", key, name_);
  return kv_error(s, "delete " + key + " in " + name_);
}

result<void> group_bucket::remove(const std::string& key) const {
  if (natsStatus s = kvStore_Delete(kv_.get(), key.c_str()); s != NATS_OK)
    return nats_error(s, "delete " + key + " in " + name_);
  return success();
}

result<std::vector<std::string>> group_bucket::keys() const {
  // Not kvStore_Keys: nats.c 3.4.1 gathers a watcher's entries until it has received more than
  // the first entry's pending count, or one says nothing is pending (src/kv.c). A key rewritten
  // during the listing comes twice, and the extra entry can end the listing before the last
  // keys: a member counted twice, a lease left out. The stream's own list of subjects is one
  // answer of the server. It also names keys whose last entry is a delete marker (the callers'
  // get() finds nothing there).
  const std::string prefix = "$KV." + name_ + ".";
  jsOptions o;
  jsOptions_Init(&o);
  const std::string filter = prefix + ">";
  o.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, conn_->js.get(), ("KV_" + name_).c_str(), &o, &code);
  stream_info_ptr si(raw);
  std::vector<std::string> out;
  if (s == NATS_NOT_FOUND) return out;
  if (s != NATS_OK) return nats_error(s, "list the keys of " + name_, code);
  if (const jsStreamStateSubjects* subjects = si->State.Subjects)
    for (int i = 0; i < subjects->Count; ++i) {
      std::string_view subject = subjects->List[i].Subject;
      if (subject.starts_with(prefix)) out.emplace_back(subject.substr(prefix.size()));
    }
  std::sort(out.begin(), out.end());
  return out;
}

result<kv_watcher_ptr> group_bucket::watch_all() const {
  kvWatcher* w = nullptr;
  if (natsStatus s = kvStore_WatchAll(&w, kv_.get(), nullptr); s != NATS_OK)
    return nats_error(s, "watch " + name_);
  return kv_watcher_ptr(w);
}

result<group_meta> join_meta(const group_bucket& b, const group_meta& wanted,
                             std::string_view reactor) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto read = b.get("meta");
    if (!read && read.error().is(errc::timeout) && attempt < 4) continue;  // a busy server
    if (!read) return std::move(read).error();
    const auto& have = *read;
    if (!have) {
      auto made = b.create("meta", encode(wanted));
      if (made) return wanted;
      if (!made.error().is(errc::conflict)) return std::move(made).error();
      continue;  // another member created it first: check theirs
    }
    JETSOURCE_TRY(m, decode_meta(have->value));
    std::vector<std::string> d;
    if (m.stream_created != wanted.stream_created)
      d.push_back(
          fmt::format("the stream was created again since the group began (it would "
                      "replay side effects); delete bucket {} to start over",
                      b.name()));
    if (m.partitions != wanted.partitions)
      d.push_back(fmt::format("partitions {} (group has {})", wanted.partitions, m.partitions));
    if (m.mode != wanted.mode)
      d.push_back(fmt::format("mode {} (group has {})", wanted.mode, m.mode));
    if (m.filter != wanted.filter)
      d.push_back(fmt::format("filter '{}' (group follows '{}')", wanted.filter, m.filter));
    if (!d.empty())
      return make_error(errc::stream_config_mismatch, "reactor {}: cannot join its group: {}",
                        reactor, fmt::join(d, "; "));
    return m;
  }
  return make_error(errc::conflict, "reactor {}: meta of {} keeps changing", reactor, b.name());
}

}  // namespace jetsource::detail
