// The key store of personal data: KV bucket jsk-<stream> on JetStream, one key per data subject,
// with a bounded in-memory cache (ADR 0016).
#include "personal/key_store_state.hpp"

#include <jetsource/event_store.hpp>

#include <sodium.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

namespace jetsource {

namespace detail {

namespace {
struct kv_entry_deleter {
  void operator()(kvEntry* e) const noexcept { kvEntry_Destroy(e); }
};
using kv_entry_ptr = std::unique_ptr<kvEntry, kv_entry_deleter>;
}  // namespace

key_store_state::~key_store_state() {
  std::lock_guard lock(mutex_);
  for (auto& [subject, e] : cache_) sodium_memzero(e.key.data(), e.key.size());
}

result<std::optional<data_key>> key_store_state::fetch(std::string_view subject) {
  const std::string name = key_name_of(subject);
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, kv.get(), name.c_str());
  kv_entry_ptr entry(raw);
  if (s == NATS_NOT_FOUND) return std::optional<data_key>{};
  if (s != NATS_OK)
    return nats_error(s, fmt::format("read the key of '{}' from {}", subject, bucket));
  if (kvEntry_ValueLen(entry.get()) != static_cast<int>(sizeof(data_key)))
    return make_error(errc::corrupt, "{}: the key of '{}' is {} bytes, not {}", bucket, subject,
                      kvEntry_ValueLen(entry.get()), sizeof(data_key));
  data_key k{};
  std::memcpy(k.data(), kvEntry_Value(entry.get()), k.size());
  return std::optional<data_key>{k};
}

// Stores a new key only if the subject's KV subject never had a message: a purge marker (a
// forgotten subject) makes this fail, so a forgotten subject never gets a key again.
result<bool> key_store_state::create(std::string_view subject, const data_key& k) {
  const std::string subj = fmt::format("$KV.{}.{}", bucket, key_name_of(subject));
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, subj.c_str(), nullptr, reinterpret_cast<const char*>(k.data()),
                     static_cast<int>(k.size()));
  msg_ptr m(raw);
  if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), "Nats-Expected-Last-Subject-Sequence", "0");
  if (s != NATS_OK) return nats_error(s, "make a key message");
  jsPubAck* ack_raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  s = js_PublishMsg(&ack_raw, js.get(), m.get(), nullptr, &code);
  pub_ack_ptr ack(ack_raw);
  if (s == NATS_OK) return true;
  if (code == JSStreamWrongLastSequenceErr) return false;  // created meanwhile, or forgotten
  return nats_error(s, fmt::format("store the key of '{}' in {}", subject, bucket), code);
}

result<data_key> key_store_state::key_for_write(std::string_view subject) {
  if (auto hit = cached(subject)) {
    if (hit->forgotten) return forgotten_error(subject);
    return hit->key;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  for (int attempt = 0; attempt < 2; ++attempt) {
    JETSOURCE_TRY(found, fetch(subject));
    if (found) {
      remember(subject, *found, false);
      return *found;
    }
    data_key k{};
    crypto_aead_xchacha20poly1305_ietf_keygen(k.data());
    JETSOURCE_TRY(created, create(subject, k));
    if (created) {
      remember(subject, k, false);
      return k;
    }
    sodium_memzero(k.data(), k.size());
    // Not created: another writer created it just now (read it), or it is forgotten.
    JETSOURCE_TRY(now, fetch(subject));
    if (now) {
      remember(subject, *now, false);
      return *now;
    }
    JETSOURCE_TRY(gone, has_marker(subject));
    if (gone) {
      remember(subject, {}, true);
      return forgotten_error(subject);
    }
  }
  return make_error(errc::conflict, "{}: the key of '{}' keeps changing", bucket, subject);
}

result<std::optional<data_key>> key_store_state::key_for_read(std::string_view subject) {
  if (auto hit = cached(subject)) {
    if (hit->forgotten) return std::optional<data_key>{};
    return std::optional<data_key>{hit->key};
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  JETSOURCE_TRY(found, fetch(subject));
  // No key: destroyed (or the key store was lost). Either way the value cannot be read.
  remember(subject, found ? *found : data_key{}, !found);
  return found;
}

// True when the subject's last KV message is a delete or purge marker.
result<bool> key_store_state::has_marker(std::string_view subject) {
  const std::string subj = fmt::format("$KV.{}.{}", bucket, key_name_of(subject));
  natsMsg* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&raw, js.get(), stream.c_str(), subj.c_str(), nullptr, &code);
  msg_ptr m(raw);
  if (s == NATS_NOT_FOUND) return false;
  if (s != NATS_OK) return nats_error(s, fmt::format("read {}", subj), code);
  auto op = header(m.get(), "KV-Operation");
  return op == "PURGE" || op == "DEL";
}

result<void> key_store_state::forget(std::string_view subject) {
  const std::string name = key_name_of(subject);
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, kv.get(), name.c_str());
  kv_entry_ptr entry(raw);
  if (s != NATS_OK && s != NATS_NOT_FOUND)
    return nats_error(s, fmt::format("read the key of '{}' from {}", subject, bucket));
  if (s == NATS_OK) {  // overwrite the key's bytes on the server's disk, then mark it forgotten
    jsErrCode code = static_cast<jsErrCode>(0);
    s = js_EraseMsg(js.get(), stream.c_str(), kvEntry_Revision(entry.get()), nullptr, &code);
    if (s != NATS_OK && s != NATS_NOT_FOUND)
      return nats_error(s, fmt::format("erase the key of '{}' in {}", subject, bucket), code);
  }
  s = kvStore_Purge(kv.get(), name.c_str(), nullptr);
  if (s != NATS_OK)
    return nats_error(s, fmt::format("purge the key of '{}' in {}", subject, bucket));
  remember(subject, {}, true);
  return success();
}

std::optional<key_store_state::entry> key_store_state::cached(std::string_view subject) {
  std::lock_guard lock(mutex_);
  auto it = cache_.find(subject);
  if (it == cache_.end()) return std::nullopt;
  if (!it->second.forgotten && std::chrono::steady_clock::now() >= it->second.expires) {
    sodium_memzero(it->second.key.data(), it->second.key.size());
    cache_.erase(it);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

void key_store_state::remember(std::string_view subject, const data_key& k, bool forgotten) {
  std::lock_guard lock(mutex_);
  auto it = cache_.find(subject);
  if (it == cache_.end()) {
    if (cache_.size() >= std::max<std::size_t>(options.cache_capacity, 1)) {
      auto victim = cache_.begin();  // any one: a miss only costs a read
      sodium_memzero(victim->second.key.data(), victim->second.key.size());
      cache_.erase(victim);
    }
    it = cache_.emplace(std::string(subject), entry{}).first;
  }
  it->second.key = k;
  it->second.forgotten = forgotten;  // permanent: a forgotten subject never gets a key again
  it->second.expires = std::chrono::steady_clock::now() + options.cache_ttl;
}

error key_store_state::forgotten_error(std::string_view subject) const {
  return make_error(errc::rejected,
                    "data subject '{}' was forgotten: its personal data can no longer be stored",
                    subject);
}

}  // namespace detail

std::string key_name_of(std::string_view subject) {
  bool plain = !subject.empty();
  for (char c : subject)
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_');
  if (plain) return std::string(subject);
  std::string out = "h.";
  for (unsigned char c : subject) out += fmt::format("{:02x}", c);
  return out;
}

namespace {
// The bucket's stream as a KV bucket of history 1 is (what js_CreateKeyValue makes), except
// that deleting a message is allowed: forget() erases the key's message on disk
// (js_EraseMsg), which a bucket made by js_CreateKeyValue refuses (DenyDelete).
result<void> make_bucket_stream(detail::key_store_state& s) {
  const std::string subjects = fmt::format("$KV.{}.>", s.bucket);
  const char* list[] = {subjects.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = s.stream.c_str();
  cfg.Description = "jetsource: keys of personal data (crypto-shredding, ADR 0016)";
  cfg.Subjects = list;
  cfg.SubjectsLen = 1;
  cfg.MaxMsgsPerSubject = 1;
  cfg.Discard = js_DiscardNew;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = s.options.replicas;
  cfg.Duplicates = 120'000'000'000;  // 2 min, as KV buckets
  cfg.AllowRollup = true;
  cfg.DenyDelete = false;
  cfg.DenyPurge = false;
  cfg.AllowDirect = true;
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus st = js_AddStream(&info, s.js.get(), &cfg, nullptr, &code);
  detail::stream_info_ptr keep(info);
  if (st == NATS_OK || code == JSStreamNameExistErr) return success();  // or made meanwhile
  // Made meanwhile too: a creator the server checks just after another one's stream went in
  // hears that the subjects overlap (nats-server 2.9.10 checks the name, then the subjects, as
  // ensure_stream knows). An overlap with a stream of another name stays an error.
  if (code == JSStreamSubjectOverlapErr) {
    jsStreamInfo* made = nullptr;
    jsErrCode again = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&made, s.js.get(), s.stream.c_str(), nullptr, &again) == NATS_OK) {
      detail::stream_info_ptr done(made);
      return success();
    }
  }
  return detail::nats_error(st, fmt::format("create key store {}", s.bucket), code);
}
}  // namespace

result<key_store> key_store::open(const connection& conn, key_store_options options) {
  if (sodium_init() < 0) return make_error(errc::internal, "libsodium cannot initialise");
  auto s = std::make_shared<detail::key_store_state>();
  s->options = std::move(options);
  s->bucket = "jsk-" + s->options.stream;
  s->stream = "KV_" + s->bucket;
  s->conn = detail::state_of(conn);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = s->options.timeout.count();
  jsCtx* js = nullptr;
  if (auto st = natsConnection_JetStream(&js, s->conn->nc.get(), &jo); st != NATS_OK)
    return detail::nats_error(st, "make a JetStream context");
  s->js.reset(js);
  kvStore* kv = nullptr;
  natsStatus st = js_KeyValue(&kv, js, s->bucket.c_str());
  if (st == NATS_NOT_FOUND) {
    if (auto made = make_bucket_stream(*s); !made) return std::move(made).error();
    st = js_KeyValue(&kv, js, s->bucket.c_str());
  }
  if (st == NATS_NO_RESPONDERS)
    return make_error(errc::unreachable,
                      "key store {}: no JetStream answered (is the server running with JetStream "
                      "enabled, -js?)",
                      s->bucket);
  if (st != NATS_OK) return detail::nats_error(st, fmt::format("open key store {}", s->bucket));
  s->kv.reset(kv);
  return key_store(std::move(s));
}

result<void> key_store::forget(std::string_view subject) {
  JETSOURCE_TRY(validate_token("data subject", subject));
  return state_->forget(subject);
}

result<bool> key_store::forgotten(std::string_view subject) {
  JETSOURCE_TRY(validate_token("data subject", subject));
  return state_->has_marker(subject);
}

key_cache_stats key_store::cache_stats() const {
  return state_->stats();
}
const key_store_options& key_store::options() const noexcept {
  return state_->options;
}
std::string key_store::bucket() const {
  return state_->bucket;
}

}  // namespace jetsource
