// A projection: a named, versioned read model built from events into its own SQLite database.
//
// A projection declares its name, its version (bump it when the handlers change what they
// write: the read model is then rebuilt), the subjects it follows, its migrations, and one
// handler per event type it cares about. Handlers run SQL inside the transaction the projector
// opened for them; events of other types are skipped (and still count as applied).
//
// Thread-safety: build a projection once, then share it read-only (the projector calls its
// handlers from several worker threads, one aggregate always on the same thread).
//
// clang-format off
//   auto summary = jetsource::projection("order_summary", 1)
//       .follow("orders.Order.>")
//       .on<order_system::order_created>([](jetsource::projection_context& cx, const auto& e) {
//         return cx.execute("INSERT INTO orders(order_id, customer_id) VALUES (?1, ?2)",
//                           cx.aggregate_id(), e.customer_id);
//       });
// clang-format on
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/detail/event_handler.hpp>
#include <jetsource/event.hpp>  // with detail/codec.hpp
#include <jetsource/event_store.hpp>
#include <jetsource/migrations.hpp>
#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace jetsource {

/// Where the event being applied comes from, and the transaction to write the read model in.
class projection_context {
 public:
  projection_context(sqlite::transaction& tx, std::string_view aggregate_type,
                     std::string_view aggregate_id, std::uint64_t sequence) noexcept
      : tx_(tx),
        aggregate_type_(aggregate_type),
        aggregate_id_(aggregate_id),
        sequence_(sequence) {}

  /// The aggregate the event belongs to, e.g. "Order" / "ord-42".
  std::string_view aggregate_type() const noexcept { return aggregate_type_; }
  std::string_view aggregate_id() const noexcept { return aggregate_id_; }
  /// The aggregate's version with this event applied (its first event is version 1).
  std::uint64_t version() const noexcept { return version_; }
  /// The stream sequence of the commit that carried the event.
  std::uint64_t sequence() const noexcept { return sequence_; }

  /// SQL in the projector's transaction (see sqlite::transaction).
  template <class... Args>
  result<void> execute(std::string_view sql, const Args&... args) {
    return tx_.execute(sql, args...);
  }
  template <class... Args>
  result<std::optional<sqlite::row>> query_one(std::string_view sql, const Args&... args) {
    return tx_.query_one(sql, args...);
  }
  template <class... Args>
  result<std::vector<sqlite::row>> query(std::string_view sql, const Args&... args) {
    return tx_.query(sql, args...);
  }
  sqlite::transaction& transaction() noexcept { return tx_; }

  void set_version(std::uint64_t v) noexcept { version_ = v; }  // by the engine

 private:
  sqlite::transaction& tx_;
  std::string_view aggregate_type_, aggregate_id_;
  std::uint64_t sequence_ = 0;
  std::uint64_t version_ = 0;
};

class projection {
 public:
  /// Decodes the current event node's "data" as the handler's type and runs the handler.
  using erased_handler = detail::erased_event_handler<projection_context>;

  /// `name`: letters, digits, '_' and '-' (it names the consumer and the database file).
  /// `version` >= 1.
  projection(std::string name, int version) : name_(std::move(name)), version_(version) {}

  /// Follows the commits of aggregate A in the store `store` describes, e.g.
  /// `.follow<order>(orders_stream())`: the filter "<subject_prefix>.<A::type_name>.>", derived
  /// from the same options and type name the writers use, so it cannot be mistyped.
  template <aggregate A>
  projection& follow(const store_options& store) {
    return follow(subject_filter_of(store, A::type_name));
  }

  /// For experts: the subject filter of its consumer as written, e.g. "orders.*.7.*" (default:
  /// the whole stream). A filter that matches no subject of the stream is accepted, and the
  /// projection then sees nothing: prefer follow<A>(store_options) for one aggregate type.
  projection& follow(std::string subject_filter) {
    filter_ = std::move(subject_filter);
    return *this;
  }

  /// "<subject_prefix>.<aggregate_type>.>": every commit of one aggregate type in a store.
  static std::string subject_filter_of(const store_options& store,
                                       std::string_view aggregate_type) {
    std::string f;
    f.reserve(store.subject_prefix.size() + aggregate_type.size() + 3);
    f.append(store.subject_prefix).append(".").append(aggregate_type).append(".>");
    return f;
  }

  /// The migrations of its database, embedded with jetsource_embed_migrations under `database`
  /// (default: the projection's name).
  projection& migrations(std::string database) {
    migrations_ = std::move(database);
    return *this;
  }

  /// Handles events of type E: `handler(projection_context&, const E&)` returning
  /// result<void> (or void). An error other than a transient SQLite one (busy, I/O) makes the
  /// event a dead letter. Older schema versions of E are upcast first.
  template <event E, class F>
  projection& on(F handler) {
    static_assert(std::is_invocable_v<F&, projection_context&, const E&>,
                  "handler must be callable as handler(projection_context&, const E&)");
    handlers_[std::string(E::type_name)] =
        detail::erase_event_handler<E, projection_context>(std::move(handler));
    return *this;
  }

  const std::string& name() const noexcept { return name_; }
  int version() const noexcept { return version_; }
  /// "" when it follows the whole stream.
  const std::string& subject_filter() const noexcept { return filter_; }
  /// The embedded migrations' database name.
  const std::string& migrations_database() const noexcept {
    return migrations_.empty() ? name_ : migrations_;
  }
  /// The handler of an event type, or null when the projection skips that type.
  const erased_handler* handler(std::string_view type) const {
    auto it = handlers_.find(type);
    return it == handlers_.end() ? nullptr : &it->second;
  }
  /// The event types it handles, sorted.
  std::vector<std::string> handled_types() const {
    std::vector<std::string> out;
    for (const auto& [type, h] : handlers_) out.push_back(type);
    return out;
  }

 private:
  std::string name_;
  int version_ = 1;
  std::string filter_;
  std::string migrations_;
  std::map<std::string, erased_handler, std::less<>> handlers_;
};

}  // namespace jetsource
