// jetsource::testing::projection_test: runs a projection over given events into an in-memory
// SQLite database, without a server, through the same apply path as the projector (dedup,
// dead letters, the projection's migrations).
//
// clang-format off
//   jetsource::testing::projection_test t(order_system::order_summary());
//   ASSERT_TRUE(t.given("Order", "o-1", order_created{"c-1"}, item_added{"sku", 2, 150}));
//   auto row = t.db().query_one("SELECT total_cents FROM order_summary WHERE order_id = 'o-1'");
// clang-format on
#pragma once

#include <jetsource/event.hpp>  // with detail/codec.hpp
#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/result.hpp>
#include <jetsource/sqlite.hpp>

// GoogleTest, for the tests that use this helper (as testing/aggregate_test.hpp). Optional here:
// the library's own implementation of the helper compiles without it.
#if __has_include(<gtest/gtest.h>)
#include <gtest/gtest.h>
#endif

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace jetsource::testing {

class projection_test {
 public:
  /// Opens ":memory:" and applies jetsource's and the projection's migrations. A failure there
  /// is kept in setup_error() and returned by every given().
  explicit projection_test(projection p);
  ~projection_test();
  projection_test(const projection_test&) = delete;
  projection_test& operator=(const projection_test&) = delete;

  /// Appends one commit of `events` to the aggregate (versions continue from its last commit)
  /// and applies it. A handler error does not fail the call: the commit becomes a dead letter,
  /// as in the projector (see dead_letters()).
  template <event... Es>
  result<void> given(std::string_view aggregate_type, std::string_view aggregate_id,
                     const Es&... events) {
    static_assert(sizeof...(Es) > 0, "a commit holds at least one event");
    std::string body = R"({"events":[)", types;
    bool ok = true;
    error failure;
    auto add = [&](const auto& e) {
      using E = std::decay_t<decltype(e)>;
      using one = std::variant<E>;
      one v{e};
      auto encoded = detail::registry<one>::encode(std::span<const one>(&v, 1));
      if (!encoded) {
        ok = false;
        failure = encoded.error();
        return;
      }
      // {"events":[ X ]} -> X
      std::string_view inner(*encoded);
      inner.remove_prefix(std::string_view(R"({"events":[)").size());
      inner.remove_suffix(2);
      if (!types.empty()) body += ',', types += ',';
      body += inner;
      types += E::type_name;
    };
    (add(events), ...);
    if (!ok) return failure;
    body += "]}";
    return apply_commit(aggregate_type, aggregate_id, types, std::move(body));
  }

  /// Applies one raw commit (for bad-input tests): `event_types` is the Es-Events header,
  /// `version` the Es-Version header (0: the aggregate's version so far + the events). A commit
  /// whose earlier versions are missing is held (errc::conflict, "held") and applies when they
  /// arrive.
  result<void> apply_commit(std::string_view aggregate_type, std::string_view aggregate_id,
                            std::string_view event_types, std::string body,
                            std::uint64_t version = 0);

  /// Re-applies a commit already given (a redelivery): it must be skipped as a duplicate.
  result<void> redeliver(std::uint64_t sequence);

  sqlite::database& db();
  result<std::vector<dead_letter>> dead_letters();
  /// Dead-letter retry / skip of one aggregate (see projector::retry); returns rows remaining.
  result<std::size_t> retry(std::string_view aggregate_type, std::string_view aggregate_id);
  result<std::size_t> skip(std::string_view aggregate_type, std::string_view aggregate_id);

  /// The error migrations gave, if any.
  const std::optional<error>& setup_error() const noexcept;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace jetsource::testing
