// What backup and restore ask the server (see stream_io.hpp).
#include "backup/stream_io.hpp"

#include "store/ids.hpp"
#include "store/stream_names.hpp"
#include "wire/headers.hpp"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>

namespace jetsource::detail::backup {

result<std::optional<stream_state>> stream_info(jsCtx* js, const std::string& stream) {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, js, stream.c_str(), nullptr, &jerr);
  stream_info_ptr si(raw);
  if (s == NATS_NOT_FOUND) return std::optional<stream_state>{};
  if (s != NATS_OK) return nats_error(s, fmt::format("stream info of {}", stream), jerr);
  if (!si || !si->Config)
    return make_error(errc::internal, "stream {}: the server sent no configuration", stream);
  const jsStreamConfig& c = *si->Config;
  stream_state st;
  auto& b = st.config;
  b.name = c.Name ? c.Name : stream;
  for (int i = 0; i < c.SubjectsLen; ++i)
    b.subjects.emplace_back(c.Subjects[i] ? c.Subjects[i] : "");
  b.description = c.Description ? c.Description : "";
  b.retention = detail::retention_name(c.Retention);
  b.storage = detail::storage_name(c.Storage);
  b.replicas = c.Replicas;
  b.duplicate_window = std::chrono::milliseconds{c.Duplicates / 1'000'000};
  b.max_msg_size = c.MaxMsgSize;
  b.deny_delete = c.DenyDelete;
  b.deny_purge = c.DenyPurge;
  b.allow_direct = c.AllowDirect;
  if (b.subjects.size() != 1 || !b.subjects[0].ends_with(".>") ||
      !b.description.starts_with(description_prefix))
    return make_error(errc::invalid_argument,
                      "stream {} is not a jetsource event stream (subjects [{}], description "
                      "'{}'): it needs one subject <prefix>.> and the partitions recorded in its "
                      "description",
                      stream, fmt::join(b.subjects, ", "), b.description);
  b.subject_prefix = b.subjects[0].substr(0, b.subjects[0].size() - 2);
  auto p = store::parse_u64(std::string_view(b.description).substr(description_prefix.size()));
  if (!p || *p == 0 || *p > 0xffffffffULL)
    return make_error(errc::invalid_argument, "stream {}: its description '{}' names no partitions",
                      stream, b.description);
  b.partitions = static_cast<std::uint32_t>(*p);
  st.first_sequence = si->State.FirstSeq;
  st.last_sequence = si->State.LastSeq;
  st.messages = si->State.Msgs;
  return std::optional<stream_state>{std::move(st)};
}

result<msg_ptr> message_at(jsCtx* js, const std::string& stream, std::uint64_t seq) {
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&raw, js, stream.c_str(), seq, nullptr, &jerr);
  msg_ptr m(raw);
  if (s == NATS_NOT_FOUND) return msg_ptr{};
  if (s != NATS_OK) return nats_error(s, fmt::format("get message {} of {}", seq, stream), jerr);
  return m;
}

std::string identity_of(natsMsg* m) {
  auto id = header(m, hdr_msg_id);
  return id.empty() ? header(m, hdr_commit_id) : id;
}

std::vector<std::pair<std::string, std::string>> headers_of(natsMsg* m) {
  std::vector<std::pair<std::string, std::string>> out;
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(m, &keys, &count) != NATS_OK) return out;
  std::vector<std::string> sorted(keys, keys + count);
  std::free(static_cast<void*>(keys));
  std::sort(sorted.begin(), sorted.end());
  for (const auto& k : sorted) {
    const char** values = nullptr;
    int n = 0;
    if (natsMsgHeader_Values(m, k.c_str(), &values, &n) != NATS_OK) continue;
    for (int i = 0; i < n; ++i) out.emplace_back(k, values[i] ? values[i] : "");
    std::free(static_cast<void*>(values));
  }
  return out;
}

}  // namespace jetsource::detail::backup
