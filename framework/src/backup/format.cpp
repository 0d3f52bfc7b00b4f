// The backup file format: the checksum, the header's JSON and the records' encoding (the file
// writer and reader are in file_io.cpp). docs/operations.md, "Backup file format".
#include "backup/format.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace jetsource::detail::backup {

std::string_view record::header(std::string_view key) const {
  for (const auto& [k, v] : headers)
    if (k == key) return v;
  return {};
}

sha256::sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) ctx_.reset();
}

void sha256::update(std::string_view bytes) {
  if (ctx_ && !bytes.empty()) EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size());
}

std::array<unsigned char, 32> sha256::final() {
  std::array<unsigned char, 32> out{};
  unsigned int n = 0;
  if (ctx_) EVP_DigestFinal_ex(ctx_.get(), out.data(), &n);
  return out;
}

std::string sha256::hex(const std::array<unsigned char, 32>& digest) {
  std::string s;
  s.reserve(64);
  for (unsigned char c : digest) s += fmt::format("{:02x}", c);
  return s;
}

// ---- header (JSON) ----

std::string header_json(const backup_info& i) {
  const auto& s = i.stream;
  nlohmann::ordered_json j;
  j["format"] = "jetsource-backup";
  j["version"] = i.version;
  j["created"] = i.created;
  j["stream"] = {{"name", s.name},
                 {"subjects", s.subjects},
                 {"subject_prefix", s.subject_prefix},
                 {"partitions", s.partitions},
                 {"description", s.description},
                 {"retention", s.retention},
                 {"storage", s.storage},
                 {"replicas", s.replicas},
                 {"duplicate_window_ms", s.duplicate_window.count()},
                 {"max_msg_size", s.max_msg_size},
                 {"deny_delete", s.deny_delete},
                 {"deny_purge", s.deny_purge},
                 {"allow_direct", s.allow_direct}};
  j["from_sequence"] = i.from_sequence;
  j["last_sequence"] = i.last_sequence;
  if (i.previous)
    j["previous"] = {{"sequence", i.previous->sequence},
                     {"subject", i.previous->subject},
                     {"msg_id", i.previous->msg_id}};
  else
    j["previous"] = nullptr;
  return j.dump();
}

result<backup_info> parse_header_json(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("format").get<std::string>() != "jetsource-backup")
      return make_error(errc::corrupt, "header: format is not jetsource-backup");
    backup_info i;
    i.version = j.at("version").get<int>();
    i.created = j.at("created").get<std::string>();
    const auto& s = j.at("stream");
    auto& c = i.stream;
    c.name = s.at("name").get<std::string>();
    c.subjects = s.at("subjects").get<std::vector<std::string>>();
    c.subject_prefix = s.at("subject_prefix").get<std::string>();
    c.partitions = s.at("partitions").get<std::uint32_t>();
    c.description = s.at("description").get<std::string>();
    c.retention = s.at("retention").get<std::string>();
    c.storage = s.at("storage").get<std::string>();
    c.replicas = s.at("replicas").get<int>();
    c.duplicate_window = std::chrono::milliseconds{s.at("duplicate_window_ms").get<std::int64_t>()};
    c.max_msg_size = s.at("max_msg_size").get<std::int64_t>();
    c.deny_delete = s.at("deny_delete").get<bool>();
    c.deny_purge = s.at("deny_purge").get<bool>();
    c.allow_direct = s.at("allow_direct").get<bool>();
    i.from_sequence = j.at("from_sequence").get<std::uint64_t>();
    i.last_sequence = j.at("last_sequence").get<std::uint64_t>();
    if (const auto& p = j.at("previous"); !p.is_null())
      i.previous =
          backup_previous{p.at("sequence").get<std::uint64_t>(), p.at("subject").get<std::string>(),
                          p.at("msg_id").get<std::string>()};
    if (c.name.empty() || c.subject_prefix.empty() || c.partitions == 0 || i.from_sequence == 0)
      return make_error(errc::corrupt,
                        "header: empty stream name or subject prefix, 0 partitions or from "
                        "sequence 0");
    if (i.previous.has_value() != (i.from_sequence > 1) ||
        (i.previous && i.previous->sequence + 1 != i.from_sequence))
      return make_error(errc::corrupt, "header: 'previous' does not match from_sequence {}",
                        i.from_sequence);
    return i;
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::corrupt, "header: {}", e.what());
  }
}

// ---- records ----

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void put_bytes(std::string& out, std::string_view b) {
  put_u32(out, static_cast<std::uint32_t>(b.size()));
  out.append(b);
}

// Reads a record's payload front to back; each read fails once past the end.
class cursor {
 public:
  explicit cursor(std::string_view p) : p_(p) {}
  bool u32(std::uint32_t& v) {
    std::uint64_t w = 0;
    if (!uint(4, w)) return false;
    v = static_cast<std::uint32_t>(w);
    return true;
  }
  bool u64(std::uint64_t& v) { return uint(8, v); }
  bool bytes(std::string& out) {
    std::uint32_t n = 0;
    if (!u32(n) || n > p_.size()) return false;
    out.assign(p_.substr(0, n));
    p_.remove_prefix(n);
    return true;
  }
  bool empty() const { return p_.empty(); }

 private:
  bool uint(std::size_t n, std::uint64_t& v) {
    if (p_.size() < n) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p_[i]);
    p_.remove_prefix(n);
    return true;
  }
  std::string_view p_;
};

}  // namespace

void encode_record(const record& r, std::string& out) {
  out.clear();
  put_u64(out, r.sequence);
  put_u64(out, static_cast<std::uint64_t>(r.time_ns));
  put_bytes(out, r.subject);
  put_u32(out, static_cast<std::uint32_t>(r.headers.size()));
  for (const auto& [k, v] : r.headers) {
    put_bytes(out, k);
    put_bytes(out, v);
  }
  put_bytes(out, r.body);
}

result<record> decode_record(std::string_view payload) {
  record r;
  cursor c(payload);
  std::uint64_t t = 0;
  std::uint32_t n = 0;
  if (!c.u64(r.sequence) || !c.u64(t) || !c.bytes(r.subject) || !c.u32(n))
    return make_error(errc::corrupt, "a record's fixed fields run past its length");
  r.time_ns = static_cast<std::int64_t>(t);
  if (n > payload.size() / 8)
    return make_error(errc::corrupt, "record at sequence {}: {} headers cannot fit", r.sequence, n);
  r.headers.resize(n);
  for (auto& [k, v] : r.headers)
    if (!c.bytes(k) || !c.bytes(v))
      return make_error(errc::corrupt, "record at sequence {}: its headers run past its length",
                        r.sequence);
  if (!c.bytes(r.body) || !c.empty())
    return make_error(errc::corrupt, "record at sequence {}: its body does not end the record",
                      r.sequence);
  if (r.subject.empty())
    return make_error(errc::corrupt, "record at sequence {}: empty subject", r.sequence);
  return r;
}

}  // namespace jetsource::detail::backup
