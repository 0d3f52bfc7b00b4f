// The Order aggregate's rules (order-system sample), given / when / then, no server.
#include <jetsource/testing/aggregate_test.hpp>

#include <order_system/order.hpp>

#include <limits>

using jetsource::errc;
using jetsource::testing::aggregate_test;
using namespace order_system;

namespace {

// Shorthands for the histories the tests start from.
order_created created(std::string customer = "c-1") {
  return {std::move(customer)};
}
item_added widget(std::int64_t qty = 2) {
  return {"widget", qty, 250};
}
item_added gadget(std::int64_t qty = 1) {
  return {"gadget", qty, 1000};
}
order_placed placed(std::int64_t total = 1500) {
  return {"c-1", total};
}
order_paid paid() {
  return {"c-1", 1500, {{"widget", 2, 250}, {"gadget", 1, 1000}}};
}

}  // namespace

// -- create ----------------------------------------------------------------------------------
TEST(OrderTest, CreatesADraftForACustomer) {
  aggregate_test<order>{}
      .when(create_order{"c-1", {}})
      .then_expect_events(order_created{"c-1"})
      .then_state([](const order& o) {
        EXPECT_EQ(o.status(), order_status::draft);
        EXPECT_EQ(o.customer_id(), "c-1");
        EXPECT_TRUE(o.lines().empty());
        EXPECT_EQ(o.total_cents(), 0);
      });
}

TEST(OrderTest, CreatesWithInitialItemsInOneDecision) {
  aggregate_test<order>{}
      .when(create_order{"c-1", {{"widget", 2, 250}, {"gadget", 1, 1000}, {"widget", 1, 250}}})
      .then_expect_events(order_created{"c-1"}, item_added{"widget", 2, 250},
                          item_added{"gadget", 1, 1000}, item_added{"widget", 1, 250})
      .then_state([](const order& o) {
        ASSERT_EQ(o.lines().size(), 2u);
        EXPECT_EQ(o.find("widget")->qty, 3);
        EXPECT_EQ(o.item_count(), 4);
        EXPECT_EQ(o.total_cents(), 1750);
      });
}

TEST(OrderTest, CannotCreateAnExistingOrder) {
  aggregate_test<order>{}
      .given(created())
      .when(create_order{"c-2", {}})
      .then_expect_error(order_error::already_exists);
  aggregate_test<order>{}
      .given(created(), order_cancelled{"c-1", ""})
      .when(create_order{"c-1", {}})
      .then_expect_error(order_error::already_exists);
}

TEST(OrderTest, CreateNeedsACustomer) {
  aggregate_test<order>{}
      .when(create_order{"", {}})
      .then_expect_error(order_error::missing_customer);
}

TEST(OrderTest, InitialItemsFollowTheAddItemRules) {
  aggregate_test<order>{}
      .when(create_order{"c-1", {{"widget", 1, 250}, {"widget", 1, 300}}})
      .then_expect_error(order_error::price_mismatch)
      .then_state([](const order& o) { EXPECT_EQ(o.status(), order_status::none); });
  aggregate_test<order>{}
      .when(create_order{"c-1", {{"widget", 0, 250}}})
      .then_expect_error(order_error::invalid_quantity);
  aggregate_test<order>{}
      .when(create_order{"c-1", {{"widget", 1, -1}}})
      .then_expect_error(order_error::invalid_price);
  aggregate_test<order>{}
      .when(create_order{"c-1", {{"", 1, 1}}})
      .then_expect_error(order_error::missing_sku);
}

TEST(OrderTest, MalformedInitialItemsAreInvalidEvenForAnExistingOrder) {
  aggregate_test<order>{}
      .given(created())
      .when(create_order{"c-1", {{"widget", 0, 250}}})
      .then_expect_error(order_error::invalid_quantity);
}

// -- add-item --------------------------------------------------------------------------------
TEST(OrderTest, AddsANewLine) {
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"widget", 2, 250})
      .then_expect_events(item_added{"widget", 2, 250})
      .then_state([](const order& o) {
        ASSERT_EQ(o.lines().size(), 1u);
        EXPECT_EQ(o.lines()[0].sku, "widget");
        EXPECT_EQ(o.total_cents(), 500);
        EXPECT_EQ(o.item_count(), 2);
      });
}

TEST(OrderTest, SameSkuAtTheSamePriceAddsToTheQuantity) {
  aggregate_test<order>{}
      .given(created(), widget(2), gadget())
      .when(add_item{"widget", 3, 250})
      .then_expect_events(item_added{"widget", 3, 250})
      .then_state([](const order& o) {
        ASSERT_EQ(o.lines().size(), 2u);
        EXPECT_EQ(o.lines()[0].sku, "widget");
        EXPECT_EQ(o.lines()[0].qty, 5);
        EXPECT_EQ(o.item_count(), 6);
        EXPECT_EQ(o.total_cents(), 5 * 250 + 1000);
      });
}

TEST(OrderTest, SameSkuAtAnotherPriceIsRejected) {
  aggregate_test<order>{}
      .given(created(), widget())
      .when(add_item{"widget", 1, 251})
      .then_expect_error(order_error::price_mismatch)
      .then_state([](const order& o) { EXPECT_EQ(o.find("widget")->qty, 2); });
}

TEST(OrderTest, FreeItemsAreAllowed) {
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"sticker", 1, 0})
      .then_expect_events(item_added{"sticker", 1, 0});
}

TEST(OrderTest, AddItemRejectsMalformedArguments) {
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"widget", 0, 250})
      .then_expect_error(order_error::invalid_quantity);
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"widget", -3, 250})
      .then_expect_error(order_error::invalid_quantity);
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"widget", 1, -1})
      .then_expect_error(order_error::invalid_price);
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"", 1, 1})
      .then_expect_error(order_error::missing_sku);
}

TEST(OrderTest, AddItemRefusesTotalsThatWouldOverflow) {
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  aggregate_test<order>{}
      .given(created())
      .when(add_item{"widget", max / 2, 3})
      .then_expect_error(order_error::too_large);
  aggregate_test<order>{}
      .given(created(), item_added{"sticker", max, 0})
      .when(add_item{"sticker", 1, 0})
      .then_expect_error(order_error::too_large);
}

TEST(OrderTest, AddItemNeedsADraft) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(add_item{"widget", 1, 250})
      .then_expect_error(order_error::not_draft);
  aggregate_test<order>{}
      .given(created(), order_cancelled{"c-1", ""})
      .when(add_item{"widget", 1, 250})
      .then_expect_error(order_error::not_draft);
}

TEST(OrderTest, AddItemToAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}
      .when(add_item{"widget", 1, 250})
      .then_expect_error(order_error::not_found);
}

// -- remove-item -----------------------------------------------------------------------------
TEST(OrderTest, RemovesTheWholeLine) {
  aggregate_test<order>{}
      .given(created(), widget(2), gadget(), item_added{"widget", 1, 250})
      .when(remove_item{"widget"})
      .then_expect_events(item_removed{"widget", 3, 250})
      .then_state([](const order& o) {
        ASSERT_EQ(o.lines().size(), 1u);
        EXPECT_EQ(o.lines()[0].sku, "gadget");
        EXPECT_EQ(o.item_count(), 1);
        EXPECT_EQ(o.total_cents(), 1000);
      });
}

TEST(OrderTest, RemovedSkuCanBeAddedAgainAtAnotherPrice) {
  aggregate_test<order>{}
      .given(created(), widget(), item_removed{"widget", 2, 250})
      .when(add_item{"widget", 1, 300})
      .then_expect_events(item_added{"widget", 1, 300});
}

TEST(OrderTest, CannotRemoveASkuThatIsNotOnTheOrder) {
  aggregate_test<order>{}
      .given(created(), widget())
      .when(remove_item{"gadget"})
      .then_expect_error(order_error::item_not_on_order);
}

TEST(OrderTest, RemoveItemNeedsADraft) {
  aggregate_test<order>{}
      .given(created(), widget(), placed(500))
      .when(remove_item{"widget"})
      .then_expect_error(order_error::not_draft);
}

TEST(OrderTest, RemoveItemOnAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}.when(remove_item{"widget"}).then_expect_error(order_error::not_found);
}

// -- place -----------------------------------------------------------------------------------
TEST(OrderTest, PlacesADraftWithItems) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget())
      .when(place_order{})
      .then_expect_events(order_placed{"c-1", 1500})
      .then_state([](const order& o) { EXPECT_EQ(o.status(), order_status::placed); });
}

TEST(OrderTest, CannotPlaceAnEmptyOrder) {
  aggregate_test<order>{}
      .given(created())
      .when(place_order{})
      .then_expect_error(order_error::empty_order);
  aggregate_test<order>{}
      .given(created(), widget(), item_removed{"widget", 2, 250})
      .when(place_order{})
      .then_expect_error(order_error::empty_order);
}

TEST(OrderTest, CannotPlaceTwice) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(place_order{})
      .then_expect_error(order_error::not_draft);
}

TEST(OrderTest, PlaceOnAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}.when(place_order{}).then_expect_error(order_error::not_found);
}

// -- pay -------------------------------------------------------------------------------------
TEST(OrderTest, PaysThePlacedTotalAndRecordsTheLines) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(pay_order{1500})
      .then_expect_events(paid())
      .then_state([](const order& o) { EXPECT_EQ(o.status(), order_status::paid); });
}

TEST(OrderTest, PaymentMustEqualTheTotal) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(pay_order{1499})
      .then_expect_error(order_error::wrong_amount);
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(pay_order{1501})
      .then_expect_error(order_error::wrong_amount);
}

TEST(OrderTest, AFreeOrderIsPaidWithZero) {
  aggregate_test<order>{}
      .given(created(), item_added{"sticker", 1, 0}, order_placed{"c-1", 0})
      .when(pay_order{0})
      .then_expect_events(order_paid{"c-1", 0, {{"sticker", 1, 0}}});
}

TEST(OrderTest, PayNeedsAPlacedOrder) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget())
      .when(pay_order{1500})
      .then_expect_error(order_error::not_placed);
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), paid())
      .when(pay_order{1500})
      .then_expect_error(order_error::not_placed);
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), order_cancelled{"c-1", ""})
      .when(pay_order{1500})
      .then_expect_error(order_error::not_placed);
}

TEST(OrderTest, NegativePaymentIsInvalid) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(pay_order{-1500})
      .then_expect_error(order_error::invalid_amount);
}

TEST(OrderTest, PayOnAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}.when(pay_order{0}).then_expect_error(order_error::not_found);
}

// -- ship ------------------------------------------------------------------------------------
TEST(OrderTest, ShipsAPaidOrder) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), paid())
      .when(ship_order{})
      .then_expect_events(order_shipped{"c-1"})
      .then_state([](const order& o) { EXPECT_EQ(o.status(), order_status::shipped); });
}

TEST(OrderTest, CannotShipUnpaidOrder) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(ship_order{})
      .then_expect_error(order_error::not_paid);
  aggregate_test<order>{}
      .given(created(), widget())
      .when(ship_order{})
      .then_expect_error(order_error::not_paid);
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), paid(), order_shipped{"c-1"})
      .when(ship_order{})
      .then_expect_error(order_error::not_paid);
}

TEST(OrderTest, ShipOnAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}.when(ship_order{}).then_expect_error(order_error::not_found);
}

// -- cancel ----------------------------------------------------------------------------------
TEST(OrderTest, CancelsADraftWithAReason) {
  aggregate_test<order>{}
      .given(created(), widget())
      .when(cancel_order{"changed my mind"})
      .then_expect_events(order_cancelled{"c-1", "changed my mind"})
      .then_state([](const order& o) {
        EXPECT_EQ(o.status(), order_status::cancelled);
        EXPECT_EQ(o.total_cents(), 500);  // a cancelled order keeps its lines
      });
}

TEST(OrderTest, CancelsAPlacedOrder) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed())
      .when(cancel_order{})
      .then_expect_events(order_cancelled{"c-1", ""});
}

TEST(OrderTest, CannotCancelAfterPayment) {
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), paid())
      .when(cancel_order{})
      .then_expect_error(order_error::not_cancellable);
  aggregate_test<order>{}
      .given(created(), widget(), gadget(), placed(), paid(), order_shipped{"c-1"})
      .when(cancel_order{})
      .then_expect_error(order_error::not_cancellable);
  aggregate_test<order>{}
      .given(created(), order_cancelled{"c-1", ""})
      .when(cancel_order{})
      .then_expect_error(order_error::not_cancellable);
}

TEST(OrderTest, CancelOnAnUnknownOrderIsNotFound) {
  aggregate_test<order>{}.when(cancel_order{}).then_expect_error(order_error::not_found);
}

// -- how errors reach callers ----------------------------------------------------------------
TEST(OrderTest, ErrorsAreClassifiedForCallers) {
  aggregate_test<order>{}
      .given(created(), widget())
      .when(add_item{"widget", 0, 250})
      .then_expect_error(errc::invalid_argument)
      .then_expect_error(order_error::invalid_quantity)
      .then_expect_error_message("the quantity must be at least 1");

  aggregate_test<order>{}
      .when(ship_order{})
      .then_expect_error(errc::not_found)
      .then_expect_error(order_error::not_found);

  aggregate_test<order>{}
      .given(created(), widget())
      .when(ship_order{})
      .then_expect_error(errc::rejected)
      .then_expect_error(order_error::not_paid)
      .then_expect_error_message("the order is draft: only a paid order can be shipped");

  aggregate_test<order>{}
      .given(created(), widget())
      .when(add_item{"widget", 1, 99})
      .then_expect_error(errc::rejected)
      .then_expect_error_message("widget is on the order at 250 cents, not 99");
}

TEST(OrderTest, MalformedCommandsSayWhyBeforeAnyState) {
  EXPECT_EQ(add_item({"widget", 0, 1}).malformed(), order_error::invalid_quantity);
  EXPECT_EQ(add_item({"widget", 1, -1}).malformed(), order_error::invalid_price);
  EXPECT_EQ(add_item({"widget", 1, 0}).malformed(), std::nullopt);
  EXPECT_EQ(pay_order{-1}.malformed(), order_error::invalid_amount);
  EXPECT_EQ(pay_order{0}.malformed(), std::nullopt);
  EXPECT_EQ(remove_item{""}.malformed(), order_error::missing_sku);
  EXPECT_EQ(create_order({"c-1", {{"widget", 1, 1}, {"gadget", 0, 1}}}).malformed(),
            order_error::invalid_quantity);
  EXPECT_EQ(create_order({"", {}}).malformed(), order_error::missing_customer);
  EXPECT_EQ(create_order({"c-1", {{"widget", 1, 1}}}).malformed(), std::nullopt);
}
