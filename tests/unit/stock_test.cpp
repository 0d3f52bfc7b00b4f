// The Stock aggregate's rules (order-system sample, issue 12), given / when / then, no server.
#include <jetsource/testing/aggregate_test.hpp>

#include <order_system/stock.hpp>

#include <limits>

using jetsource::errc;
using jetsource::testing::aggregate_test;
using namespace order_system;

TEST(StockTest, ReceivingAddsUnitsOnHand) {
  aggregate_test<stock>{}
      .given(stock_received{5})
      .when(receive_stock{3})
      .then_expect_events(stock_received{3})
      .then_state([](const stock& s) {
        EXPECT_EQ(s.received(), 8);
        EXPECT_EQ(s.sold(), 0);
        EXPECT_EQ(s.on_hand(), 8);
      });
}

TEST(StockTest, ReceivingNothingOrLessIsMalformed) {
  for (std::int64_t qty : {0, -1}) {
    aggregate_test<stock>{}
        .when(receive_stock{qty})
        .then_expect_error(stock_error::invalid_quantity)
        .then_expect_error(errc::invalid_argument);
  }
}

TEST(StockTest, ASaleIsRecordedWhateverIsOnHandAndMayGoNegative) {
  aggregate_test<stock>{}
      .given(stock_received{1})
      .when(record_sale{"o-1", 0, 3})
      .then_expect_events(sale_recorded{"o-1", 0, 3})
      .then_state([](const stock& s) {
        EXPECT_EQ(s.sold(), 3);
        EXPECT_EQ(s.on_hand(), -2);  // a backorder, never a refusal
        EXPECT_TRUE(s.counted("o-1", 0));
      });
}

TEST(StockTest, TheSameOrderLineIsCountedOnce) {
  aggregate_test<stock>{}
      .given(stock_received{10}, sale_recorded{"o-1", 0, 3})
      .when(record_sale{"o-1", 0, 3})
      .then_expect_no_events()
      .then_state([](const stock& s) { EXPECT_EQ(s.sold(), 3); });
}

TEST(StockTest, OtherLinesAndOrdersCountSeparately) {
  aggregate_test<stock>{}
      .given(sale_recorded{"o-1", 0, 3})
      .when(record_sale{"o-1", 1, 2})
      .then_expect_events(sale_recorded{"o-1", 1, 2});
  aggregate_test<stock>{}
      .given(sale_recorded{"o-1", 0, 3})
      .when(record_sale{"o-2", 0, 2})
      .then_expect_events(sale_recorded{"o-2", 0, 2});
}

TEST(StockTest, ADuplicateSaleInTheHistoryCountsOnce) {
  // Written by a writer without the check (the stream is not only this aggregate's).
  aggregate_test<stock>{}
      .given(sale_recorded{"o-1", 0, 3}, sale_recorded{"o-1", 0, 3})
      .then_state([](const stock& s) { EXPECT_EQ(s.sold(), 3); });
}

TEST(StockTest, MalformedSalesSayWhatIsWrong) {
  aggregate_test<stock>{}.when(record_sale{"", 0, 1}).then_expect_error(stock_error::missing_order);
  aggregate_test<stock>{}
      .when(record_sale{"o", -1, 1})
      .then_expect_error(stock_error::invalid_line);
  aggregate_test<stock>{}
      .when(record_sale{"o", 0, 0})
      .then_expect_error(stock_error::invalid_units);
}

TEST(StockTest, TotalsThatWouldOverflowAreRefused) {
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  aggregate_test<stock>{}
      .given(stock_received{max})
      .when(receive_stock{1})
      .then_expect_error(stock_error::too_large);
  aggregate_test<stock>{}
      .given(sale_recorded{"o-1", 0, max})
      .when(record_sale{"o-2", 0, 1})
      .then_expect_error(stock_error::too_large);
  aggregate_test<stock>{}  // on_hand = received - sold of two totals >= 0 always fits
      .given(sale_recorded{"o-1", 0, max})
      .when(receive_stock{1})
      .then_expect_events(stock_received{1})
      .then_state([](const stock& s) { EXPECT_EQ(s.on_hand(), 1 - max); });
}
