// The counter's tests, without a server: the aggregate's rules and its read model.
#include "counter.hpp"

#include <jetsource/testing/aggregate_test.hpp>
#include <jetsource/testing/projection_test.hpp>

#include <cstdint>

TEST(CounterTest, Increments) {
  jetsource::testing::aggregate_test<counter>{}
      .given(counter_incremented{2})
      .when(increment{3})
      .then_expect_events(counter_incremented{3})
      .then_state([](const counter& c) { EXPECT_EQ(c.value(), 5); });
}

TEST(CounterTest, RefusesToOverflow) {
  jetsource::testing::aggregate_test<counter>{}
      .given(counter_incremented{999})
      .when(increment{2})
      .then_expect_error(counter_error::too_big);
}

TEST(CounterTotalsTest, AddsUpIncrements) {
  jetsource::testing::projection_test t(counter_totals());
  ASSERT_FALSE(t.setup_error());
  ASSERT_TRUE(t.given("Counter", "c-1", counter_incremented{2}, counter_incremented{3}));
  ASSERT_TRUE(t.given("Counter", "c-1", counter_incremented{4}));
  auto row = t.db().query_one("SELECT value FROM counter_totals WHERE counter_id = 'c-1'");
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->get<std::int64_t>(0), 9);
}
