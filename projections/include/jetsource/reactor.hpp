// A reactor: a named service that reacts to events with side effects (a webhook, another
// system's API) or, as a process manager, with commands to other aggregates (issue 12,
// ADR 0014, docs/reactors.md).
//
// A reactor is declared like a projection: a name, the subjects it follows, one handler per
// event type. It runs at-least-once: the context gives a stable idempotency key per event, and
// commands issued through cx.execute(...) get deterministic command ids, so a redelivered event's
// commands land once (append_status::already_appended).
//
// Delivery: every reactor name sees every event it follows (fan-out). Any number of processes
// may run the same reactor as members of its group: the aggregates' partitions are shared out by
// leases in a KV bucket, one member handles an aggregate's events one at a time in version order,
// and a killed member's partitions are taken over after `lease`. delivery::queue is the plain
// shared durable: any member takes any event, no order.
//
// Thread-safety: build a reactor once, then share it read-only (a member calls its handlers from
// several worker threads, one aggregate always on the same thread).
//
// clang-format off
//   auto inventory = jetsource::reactor("inventory")
//       .follow<order_system::order>(orders_stream())
//       .on<order_system::order_paid>([&](jetsource::reaction_context& cx,
//                                         const auto&) -> jetsource::result<void> {
//         // one command per paid line; ids derived from the event, so a redelivery lands once
//         JETSOURCE_TRY(sold, cx.execute(stock, "sku-1", record_sale{.units = 2}));
//         return jetsource::success();
//       });
//   auto m = jetsource::reactor_member::start(rt->conn, inventory, {.stream = "ORDERS"});
//   // ... until SIGTERM, then:
//   m->stop();  // hands its partitions over at once
// clang-format on
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/connection.hpp>
#include <jetsource/detail/event_handler.hpp>
#include <jetsource/event.hpp>  // with detail/codec.hpp
#include <jetsource/event_store.hpp>
#include <jetsource/metrics.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace jetsource {

/// Where the event being handled comes from, and how to act on it at-least-once safely.
class reaction_context {
 public:
  /// Everything the engine knows about the event (views valid during the handler call).
  struct origin {
    std::string_view reactor{};
    std::string_view aggregate_type{}, aggregate_id{};
    std::uint64_t version = 0;    ///< the aggregate's version with this event applied
    std::uint64_t sequence = 0;   ///< stream sequence of the commit that carried it
    std::size_t event_index = 0;  ///< its index within that commit
    std::string_view commit_id{}, timestamp{}, correlation_id{}, causation_id{};
    std::uint32_t partition = 0;  ///< ordered groups: the partition leased; 0 in queue mode
    std::uint64_t epoch = 0;      ///< ordered groups: the lease's epoch; 0 in queue mode
    int attempt = 1;              ///< 1 for the first call, 2 for the first retry, ...
  };

  /// `still_owner`: the member's self-fence (ADR 0014), checked before each command; an empty
  /// function means "always".
  explicit reaction_context(origin o, std::function<bool()> still_owner = {})
      : o_(o), still_owner_(std::move(still_owner)) {}

  std::string_view reactor() const noexcept { return o_.reactor; }
  std::string_view aggregate_type() const noexcept { return o_.aggregate_type; }
  std::string_view aggregate_id() const noexcept { return o_.aggregate_id; }
  std::uint64_t version() const noexcept { return o_.version; }
  std::uint64_t sequence() const noexcept { return o_.sequence; }
  std::size_t event_index() const noexcept { return o_.event_index; }
  std::string_view commit_id() const noexcept { return o_.commit_id; }
  /// Es-Timestamp of the commit (writer's clock, RFC 3339 UTC).
  std::string_view timestamp() const noexcept { return o_.timestamp; }
  std::string_view correlation_id() const noexcept { return o_.correlation_id; }
  std::string_view causation_id() const noexcept { return o_.causation_id; }
  int attempt() const noexcept { return o_.attempt; }

  /// The fencing token: a sink that remembers the highest epoch per partition can refuse an
  /// overlapping older owner's late call.
  std::uint32_t partition() const noexcept { return o_.partition; }
  std::uint64_t epoch() const noexcept { return o_.epoch; }

  /// "<reactor>:<Type>:<id>:<version>": the same on every delivery, retry and member of this
  /// event; pass it to what the handler calls (e.g. an Idempotency-Key header).
  std::string idempotency_key() const {
    std::string k;
    k.append(o_.reactor).append(":").append(o_.aggregate_type).append(":");
    k.append(o_.aggregate_id).append(":").append(std::to_string(o_.version));
    return k;
  }

  /// The metadata of the handler's next command: command id "<idempotency key>:<n>" for its
  /// n-th command (counted from 0 in each call, so a retry or redelivery issues the same ids),
  /// causation id = the triggering commit's id, correlation id carried over (or the commit id
  /// when the commit had none). Fails with errc::conflict ("lease lost") when this member no
  /// longer holds the partition.
  result<command_context> next_command() {
    if (still_owner_ && !still_owner_()) {
      return error{errc::conflict, "reactor " + std::string(o_.reactor) +
                                       ": lease lost on partition " + std::to_string(o_.partition)};
    }
    command_context c;
    c.command_id = idempotency_key() + ":" + std::to_string(commands_++);
    c.causation_id = std::string(o_.commit_id);
    c.correlation_id = std::string(o_.correlation_id.empty() ? o_.commit_id : o_.correlation_id);
    return c;
  }

  /// A process manager's command: repo.execute(id, command, next_command()).
  template <aggregate A, command_for<A> C>
  result<executed> execute(repository<A>& repo, std::string_view id, const C& command) {
    auto c = next_command();
    if (!c) return std::move(c).error();
    return repo.execute(id, command, c.value());
  }

 private:
  origin o_;
  std::function<bool()> still_owner_;
  int commands_ = 0;
};

/// How the members of one reactor share its events.
enum class delivery {
  ordered,  ///< partitions leased to members; per-aggregate version order (the default)
  queue,    ///< one shared durable: any member takes any event; no order, no parking
};

/// Where a reactor that has no state yet (no bucket) starts.
enum class start_position {
  first,  ///< the stream's first event
  head,   ///< only events appended after the group first starts
};

/// In-process retries of a failing handler (never server redelivery), then the aggregate parks.
struct retry_policy {
  int attempts = 5;                              ///< calls in all, the first included
  std::chrono::milliseconds first_backoff{100};  ///< doubles per attempt, with jitter
  std::chrono::milliseconds max_backoff{30000};
};

struct reactor_options {
  std::string stream;    ///< the stream to follow (required)
  std::string instance;  ///< this member's name in its group; "" = a random one
  delivery mode = delivery::ordered;
  start_position start = start_position::first;  ///< used only when the group is created
  /// Ordered groups: a killed member's partitions are taken over after this (renewals every
  /// lease/3; ADR 0014).
  std::chrono::milliseconds lease{6000};
  int workers = 4;  ///< keyed workers: handlers of different aggregates run in parallel
  int batch = 500;  ///< messages per pull request
  std::chrono::milliseconds pull_expires{500};
  std::size_t max_buffered = 20000;  ///< fetched but not yet handled, at most
  retry_policy retry;
  std::chrono::milliseconds queue_ack_wait{30000};  ///< queue mode: the server redelivers after
  /// stop(): how long in-flight handlers may take before their partitions are given up anyway
  std::chrono::milliseconds drain_timeout{10000};
  /// start(): how long it keeps asking when JetStream does not answer (errc::timeout or
  /// errc::unreachable: a cluster electing a leader after a node died takes seconds) before it
  /// fails with that error. 0: fail on the first.
  std::chrono::milliseconds start_patience{30000};
  /// where the jetsource_reactor_* series are reported; nullptr: nowhere
  metrics::registry* metrics = &metrics::default_registry();
};

/// An aggregate whose handler gave up: its later events wait until `retry` or `skip`.
struct parked_aggregate {
  std::uint32_t partition = 0;
  std::string aggregate_type, aggregate_id;
  std::uint64_t sequence = 0;  ///< of the failing event's commit
  std::uint64_t version = 0;   ///< of the failing event
  std::string event_type;
  std::string error;
  int attempts = 0;
  std::string first_failed_at, last_failed_at;  ///< UTC ISO 8601
  std::string request;                          ///< "", "retry" or "skip" (pending)
};

struct reactor_member_info {
  std::string instance, host;
  long pid = 0;
  std::vector<std::uint32_t> partitions;  ///< leased now
  std::uint64_t position = 0;             ///< its cursor's last delivered stream sequence
  std::uint64_t pending = 0;              ///< its cursor's messages still to deliver
};

/// A reactor group's state as any process can read it from the group's bucket.
struct reactor_status {
  std::string name, stream;
  std::string mode;            ///< "ordered" or "queue"
  std::uint64_t position = 0;  ///< every event at or below it is handled (lowest checkpoint)
  std::uint64_t pending = 0;   ///< the largest pending count its members report
  std::vector<reactor_member_info> members;  ///< live ones
  std::vector<parked_aggregate> parked;
  std::uint64_t dead_letters = 0;  ///< parked aggregates + queue-mode dead records
};

class reactor {
 public:
  /// Decodes the current event node's "data" as the handler's type and runs the handler.
  using erased_handler = detail::erased_event_handler<reaction_context>;

  /// `name`: letters, digits, '_' and '-' (it names the group's bucket and consumers).
  explicit reactor(std::string name) : name_(std::move(name)) {}

  /// Follows the commits of aggregate A in the store `store` describes.
  template <aggregate A>
  reactor& follow(const store_options& store) {
    std::string f;
    f.append(store.subject_prefix).append(".").append(A::type_name).append(".>");
    return follow(std::move(f));
  }
  /// For experts: the subject filter as written (default: the whole stream).
  reactor& follow(std::string subject_filter) {
    filter_ = std::move(subject_filter);
    return *this;
  }

  /// Handles events of type E: `handler(reaction_context&, const E&)` returning result<void>
  /// (or void). An error is retried with backoff (reactor_options::retry), then the aggregate
  /// parks. Older schema versions of E are upcast first. Other event types are passed over.
  template <event E, class F>
  reactor& on(F handler) {
    static_assert(std::is_invocable_v<F&, reaction_context&, const E&>,
                  "handler must be callable as handler(reaction_context&, const E&)");
    handlers_[std::string(E::type_name)] =
        detail::erase_event_handler<E, reaction_context>(std::move(handler));
    return *this;
  }

  const std::string& name() const noexcept { return name_; }
  const std::string& subject_filter() const noexcept { return filter_; }
  const erased_handler* handler(std::string_view type) const {
    auto it = handlers_.find(type);
    return it == handlers_.end() ? nullptr : &it->second;
  }

 private:
  std::string name_;
  std::string filter_;
  std::map<std::string, erased_handler, std::less<>> handlers_;
};

namespace detail {
struct reactor_member_state;
}

/// One process's membership in a reactor's group: it leases partitions, reads its cursor and
/// calls the handlers until stopped.
class reactor_member {
 public:
  /// Creates or joins the group (its bucket `jsr-<STREAM>-<reactor>`), starts the cursor, the
  /// workers and the lease keeper. Errors: errc::invalid_argument (bad name or options),
  /// errc::stream_config_mismatch (the group was created with another filter, mode or stream
  /// incarnation), errc::conflict (another live process uses this instance name), NATS errors.
  static result<reactor_member> start(const connection& conn, reactor r, reactor_options o);

  reactor_member(reactor_member&&) noexcept;
  reactor_member& operator=(reactor_member&&) noexcept;
  reactor_member(const reactor_member&) = delete;
  reactor_member& operator=(const reactor_member&) = delete;
  ~reactor_member();  ///< stops (as stop()) if still running

  /// Stops reading, lets in-flight handlers finish (within drain_timeout), writes the
  /// checkpoints and releases its leases, so the others take over at once.
  result<void> stop();

  const std::string& instance() const noexcept;
  /// The partitions it holds now (ordered mode).
  std::vector<std::uint32_t> partitions() const;
  /// The group's state (as read_reactor_status), from this member's view.
  reactor_status status() const;
  /// Why the member stopped working by itself, if it did: errc::server_error when the server
  /// refuses its cursor's pulls, acks or consumer requests (a permissions violation: the user
  /// lacks a right of the REACTOR role, docs/security.md). It then reads nothing more and hands
  /// its partitions over to the group's other members; stop() still works. Cheap: no I/O.
  std::optional<error> failure() const;

 private:
  explicit reactor_member(std::unique_ptr<detail::reactor_member_state> s) noexcept;
  std::unique_ptr<detail::reactor_member_state> s_;
};

/// The group's state, read from its bucket by any process (`order-system reactors status`).
/// errc::not_found when the reactor never ran on this stream.
result<reactor_status> read_reactor_status(const connection& conn, std::string_view stream,
                                           std::string_view reactor_name);

/// Asks the owner of a parked aggregate to handle its events again from the failing one
/// (retry) or to count the failing event as handled and go on (skip). Waits up to `wait` for the
/// owner to finish (the park record gone); errc::timeout when it has not by then (the request
/// stays), errc::not_found when the aggregate is not parked. `aggregate_type` "" = any type.
result<void> request_reactor_retry(const connection& conn, std::string_view stream,
                                   std::string_view reactor_name, std::string_view aggregate_type,
                                   std::string_view aggregate_id,
                                   std::chrono::milliseconds wait = std::chrono::seconds(10));
result<void> request_reactor_skip(const connection& conn, std::string_view stream,
                                  std::string_view reactor_name, std::string_view aggregate_type,
                                  std::string_view aggregate_id,
                                  std::chrono::milliseconds wait = std::chrono::seconds(10));

}  // namespace jetsource
