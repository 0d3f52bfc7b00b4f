// Test support: the "balances" projection over the bank sample's events (migrations in
// tests/migrations/balances), with hooks to make it fail and to catch out-of-order applies.
#pragma once

#include <jetsource/projection.hpp>

#include "test_domain.hpp"

#include <atomic>
#include <chrono>
#include <thread>

namespace jetsource::test {

struct balances_hooks {
  std::atomic<int> order_violations{0};  // an event applied without its predecessor
  std::atomic<bool> poison{true};        // a deposit with note "poison" fails while set
  std::atomic<int> slow_once{0};         // > 0: a deposit with note "slow" sleeps this many ms,
                                         // once
  std::atomic<int> applied{0};           // handler calls that wrote something
  std::atomic<int> delay_us{0};          // every deposit handler sleeps this long
};

inline balances_hooks& hooks() {
  static balances_hooks h;
  return h;
}

namespace detail_balances {
inline result<void> add(projection_context& cx, std::int64_t cents, bool deposit) {
  JETSOURCE_TRY(
      row, cx.query_one("SELECT version FROM balances WHERE account_id = ?1", cx.aggregate_id()));
  if (!row || row->get<std::uint64_t>(0) + 1 != cx.version()) ++hooks().order_violations;
  ++hooks().applied;
  return cx.execute(
      "UPDATE balances SET balance_cents = balance_cents + ?2, version = ?3, "
      "deposits = deposits + ?4 WHERE account_id = ?1",
      cx.aggregate_id(), cents, cx.version(), deposit ? 1 : 0);
}
}  // namespace detail_balances

/// Follows the accounts of the fixture's stream (subject prefix "test").
inline projection balances_projection(int version = 1) {
  return projection("balances", version)
      .follow("test.Account.>")
      .on<bank::account_opened>([](projection_context& cx, const bank::account_opened& e) {
        if (cx.version() != 1) ++hooks().order_violations;
        ++hooks().applied;
        return cx.execute(
            "INSERT INTO balances (account_id, owner, balance_cents, version) "
            "VALUES (?1, ?2, 0, ?3)",
            cx.aggregate_id(), e.owner, cx.version());
      })
      .on<bank::deposited>([](projection_context& cx, const bank::deposited& e) -> result<void> {
        if (e.note == "poison" && hooks().poison)
          return make_error(errc::invalid_argument, "the note says poison");
        if (int us = hooks().delay_us; us > 0)
          std::this_thread::sleep_for(std::chrono::microseconds(us));
        if (e.note == "slow") {
          int ms = hooks().slow_once.exchange(0);
          if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        }
        return detail_balances::add(cx, e.amount_cents, true);
      })
      .on<bank::withdrawn>([](projection_context& cx, const bank::withdrawn& e) {
        return detail_balances::add(cx, -e.amount_cents, false);
      });
}

}  // namespace jetsource::test
