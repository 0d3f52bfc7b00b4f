// detail: a reactor group's state in its KV bucket `jsr-<STREAM>-<reactor>` (ADR 0014): the
// bucket itself, its keys, the JSON values kept under them (meta, member, lease, park, dead),
// and the few KV calls the engine makes (read, create, compare-and-set, delete-if-unchanged).
//
// Thread-safety: a group_bucket is shared by a member's threads; every call is one nats.c KV
// call (thread-safe) or pure.
#pragma once

#include <jetsource/connection.hpp>
#include <jetsource/reactor.hpp>
#include <jetsource/result.hpp>

#include "nats/handles.hpp"

#include <nats/nats.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource::detail {

struct kv_deleter {
  void operator()(kvStore* p) const noexcept { kvStore_Destroy(p); }
  void operator()(kvEntry* p) const noexcept { kvEntry_Destroy(p); }
  void operator()(kvWatcher* p) const noexcept { kvWatcher_Destroy(p); }
};
using kv_ptr = std::unique_ptr<kvStore, kv_deleter>;
using kv_entry_ptr = std::unique_ptr<kvEntry, kv_deleter>;
using kv_watcher_ptr = std::unique_ptr<kvWatcher, kv_deleter>;

/// What the stream says about itself: its partition count and creation time (ADR 0011).
struct stream_facts {
  std::uint32_t partitions = 0;
  std::int64_t created = 0;
  std::uint64_t last_sequence = 0;
  std::string subject;  ///< "<prefix>.>"
  int replicas = 1;
  std::int64_t duplicates_ns = 0;
};
result<stream_facts> read_stream_facts(connection_state& c, const std::string& stream);

/// `meta`: fixed when the group is created; every member checks it.
struct group_meta {
  std::string stream;
  std::int64_t stream_created = 0;
  std::uint32_t partitions = 0;
  std::string mode;  ///< "ordered" / "queue"
  std::string filter;
  std::uint64_t first_sequence = 1;  ///< where the group started (checkpoints start below it)
  int format = 1;
};

/// `member.<instance>`.
struct member_value {
  std::string instance, incarnation, host;
  long pid = 0;
  std::int64_t lease_ms = 0;
  std::vector<std::uint32_t> partitions;
  std::uint64_t position = 0, pending = 0;
};

/// `lease.<p>`: holder "" = free.
struct lease_value {
  std::string holder, incarnation;
  std::uint64_t epoch = 0;
  std::uint64_t checkpoint = 0;
  std::string updated_at;
};

/// `park.<p>.<Type>.<id>` (ADR 0014, "Park").
struct park_value {
  parked_aggregate a;
  std::uint64_t epoch = 0;
};

std::string encode(const group_meta& m);
std::string encode(const member_value& m);
std::string encode(const lease_value& l);
std::string encode(const park_value& p);
result<group_meta> decode_meta(std::string_view json);
result<member_value> decode_member(std::string_view json);
result<lease_value> decode_lease(std::string_view json);
result<park_value> decode_park(std::string_view json);

std::string lease_key(std::uint32_t p);
std::string member_key(std::string_view instance);
std::string park_key(std::uint32_t p, std::string_view type, std::string_view id);
/// The partition of a key "lease.<p>" / "park.<p>...." (nullopt: another key).
std::optional<std::uint32_t> partition_of_key(std::string_view key, std::string_view prefix);

/// `name` may name a bucket and consumers: letters, digits, '_' and '-'.
result<void> validate_reactor_name(std::string_view what, std::string_view name);
std::string bucket_name(std::string_view stream, std::string_view reactor);

class group_bucket {
 public:
  /// The group's bucket; `create`: made when missing (file-backed, History 1, no TTL,
  /// `replicas`), else errc::not_found when the reactor never ran on this stream.
  static result<group_bucket> open(const std::shared_ptr<connection_state>& c,
                                   std::string_view stream, std::string_view reactor, bool create,
                                   int replicas);

  struct entry {
    std::string value;
    std::uint64_t revision = 0;
    std::int64_t created_ns = 0;  ///< the server's time of the write
  };
  /// nullopt when the key does not exist (or was deleted).
  result<std::optional<entry>> get(const std::string& key) const;
  /// errc::conflict when the key exists already (ExpectNoMessage).
  result<std::uint64_t> create(const std::string& key, std::string_view value) const;
  /// Compare-and-set on `revision`: errc::conflict when the key changed since.
  result<std::uint64_t> update(const std::string& key, std::string_view value,
                               std::uint64_t revision) const;
  result<std::uint64_t> put(const std::string& key, std::string_view value) const;
  /// Deletes the key if its last revision is still `revision` (errc::conflict otherwise).
  result<void> remove_if(const std::string& key, std::uint64_t revision) const;
  result<void> remove(const std::string& key) const;
  /// Every key now, each once, in sorted order; may name deleted keys (get() finds nothing).
  result<std::vector<std::string>> keys() const;
  /// A watcher over every key (initial values, then a null entry, then updates).
  result<kv_watcher_ptr> watch_all() const;

  kvStore* kv() const noexcept { return kv_.get(); }
  const std::string& name() const noexcept { return name_; }

 private:
  group_bucket(std::shared_ptr<connection_state> c, kv_ptr kv, std::string name)
      : conn_(std::move(c)), kv_(std::move(kv)), name_(std::move(name)) {}
  std::shared_ptr<connection_state> conn_;
  std::shared_ptr<kvStore> kv_;
  std::string name_;
};

/// Creates `meta` or checks it against the group's (errc::stream_config_mismatch on a
/// difference: another filter, mode, partition count or stream incarnation).
result<group_meta> join_meta(const group_bucket& b, const group_meta& wanted,
                             std::string_view reactor);

}  // namespace jetsource::detail
