// jetsource::testing::aggregate_test must fail a test when the aggregate does not do what the
// test says (a helper that always passes would make every aggregate test worthless).
#include <jetsource/testing/aggregate_test.hpp>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "test_domain.hpp"

namespace {

using jetsource::testing::aggregate_test;
using namespace bank;

// -- it passes when it should ----------------------------------------------------------------

TEST(TestingHelperTest, PassesOnTheRightOutcomes) {
  aggregate_test<account>{}
      .when(open_account{"ada", 500})
      .then_expect_events(account_opened{"ada"}, deposited{500, "initial"});
  aggregate_test<account>{}
      .given(account_opened{"ada"})
      .when(withdraw{1})
      .then_expect_error(account_error::insufficient_funds);
  aggregate_test<account>{}
      .given(account_opened{"ada"}, account_closed{})
      .when(close_account{})
      .then_expect_no_events();
}

TEST(TestingHelperTest, GivenAppliesEventsInOrderAndCountsThem) {
  aggregate_test<account> t;
  t.given(account_opened{"ada"}, deposited{100, "a"}).given(withdrawn{30}, deposited{5, "b"});
  EXPECT_EQ(t.given_version(), 4u);
  EXPECT_EQ(t.state().balance_cents(), 75);
  EXPECT_EQ(t.state().notes(), (std::vector<std::string>{"a", "b"}));
}

TEST(TestingHelperTest, WhenAppliesAcceptedEventsOnly) {
  aggregate_test<account> accepted;
  accepted.given(account_opened{"ada"})
      .when(deposit{40, "x"})
      .then_expect_events(deposited{40, "x"});
  EXPECT_EQ(accepted.state().balance_cents(), 40);
  EXPECT_EQ(accepted.given_version(), 1u);  // when() does not count as history

  aggregate_test<account> rejected;
  rejected.given(account_opened{"ada"})
      .when(withdraw{40})
      .then_expect_error(account_error::insufficient_funds);
  EXPECT_EQ(rejected.state().balance_cents(), 0);
}

// -- then_expect_events ----------------------------------------------------------------------

TEST(TestingHelperTest, ExpectEventsFailsOnADifferentField) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(deposit{40, "x"})
                              .then_expect_events(deposited{41, "x"}),
                          "events differ");
  // The failure shows the expected event (gtest prints strings with escaped quotes).
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(deposit{40, "x"})
                              .then_expect_events(deposited{40, "y"}),
                          R"(\"note\":\"y\")");
}

TEST(TestingHelperTest, ExpectEventsFailsOnADifferentType) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"}, deposited{100, ""})
                              .when(withdraw{40})
                              .then_expect_events(deposited{40, ""}),
                          "Withdrawn");
}

TEST(TestingHelperTest, ExpectEventsFailsOnMissingExtraOrReorderedEvents) {
  // The command emits AccountOpened then Deposited.
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .when(open_account{"ada", 500})
                              .then_expect_events(account_opened{"ada"}),
                          "events differ");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .when(open_account{"ada", 500})
                              .then_expect_events(account_opened{"ada"}, deposited{500, "initial"},
                                                  deposited{500, "initial"}),
                          "events differ");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .when(open_account{"ada", 500})
                              .then_expect_events(deposited{500, "initial"}, account_opened{"ada"}),
                          "events differ");
  // Expecting nothing through then_expect_events() is a real comparison too.
  EXPECT_NONFATAL_FAILURE(
      aggregate_test<account>{}.when(open_account{"ada", 0}).then_expect_events(), "events differ");
}

TEST(TestingHelperTest, ExpectEventsFailsOnARejection) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(withdraw{40})
                              .then_expect_events(withdrawn{40}),
                          "the command was rejected: balance 0 < 40");
  EXPECT_NONFATAL_FAILURE(
      aggregate_test<account>{}.when(deposit{1, ""}).then_expect_events(deposited{1, ""}),
      "the account is not open");
}

// -- then_expect_error -----------------------------------------------------------------------

TEST(TestingHelperTest, ExpectErrorFailsOnAnAcceptedCommand) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(deposit{5, "n"})
                              .then_expect_error(account_error::invalid_amount),
                          "but the command was accepted");
  // Accepted with no events is still accepted.
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"}, account_closed{})
                              .when(close_account{})
                              .then_expect_error(account_error::closed),
                          "but the command was accepted");
}

TEST(TestingHelperTest, ExpectErrorFailsOnADifferentEnumerator) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(withdraw{40})
                              .then_expect_error(account_error::invalid_amount),
                          "expected rejection 'amounts must be positive', got 'balance 0 < 40'");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"}, account_closed{})
                              .when(deposit{5, ""})
                              .then_expect_error(account_error::not_open),
                          "the account is closed");
}

enum class other_error { closed };  // same underlying value as account_error::already_open

TEST(TestingHelperTest, ExpectErrorFailsOnAnotherEnumWithTheSameValue) {
  static_assert(static_cast<int>(other_error::closed) ==
                static_cast<int>(account_error::already_open));
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(open_account{"bob"})
                              .then_expect_error(other_error::closed),
                          "expected rejection");
}

// -- then_expect_error(errc) and then_expect_error_message -------------------------------------

TEST(TestingHelperTest, ExpectErrorCodeAndMessagePassOnTheRightOnes) {
  aggregate_test<account>{}
      .given(account_opened{"ada"})
      .when(withdraw{40})
      .then_expect_error(jetsource::errc::rejected)
      .then_expect_error_message("balance 0 < 40");
}

TEST(TestingHelperTest, ExpectErrorCodeFailsOnAnotherCode) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(withdraw{40})
                              .then_expect_error(jetsource::errc::invalid_argument),
                          "expected an error with code invalid_argument, got rejected: "
                          "balance 0 < 40");
}

TEST(TestingHelperTest, ExpectErrorMessageFailsOnAnotherMessage) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(withdraw{40})
                              .then_expect_error_message("balance 0 < 41"),
                          "balance 0 < 41");
}

TEST(TestingHelperTest, ExpectErrorCodeAndMessageFailOnAnAcceptedCommand) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(deposit{5, "n"})
                              .then_expect_error(jetsource::errc::rejected),
                          "expected an error with code rejected, but the command was accepted");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(deposit{5, "n"})
                              .then_expect_error_message("insufficient funds"),
                          "expected rejection 'insufficient funds', but the command was accepted");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}.then_expect_error_message("x"),
                          "then_* without when(command)");
}

// -- then_expect_no_events -------------------------------------------------------------------

TEST(TestingHelperTest, ExpectNoEventsFailsWhenEventsWereEmitted) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .when(close_account{})
                              .then_expect_no_events(),
                          "expected no events, got {\"events\":[{\"type\":\"AccountClosed\"");
}

TEST(TestingHelperTest, ExpectNoEventsFailsOnARejection) {
  EXPECT_NONFATAL_FAILURE(
      aggregate_test<account>{}.when(close_account{}).then_expect_no_events(),
      "expected no events, but the command was rejected: the account is not open");
}

// -- then_* without when ---------------------------------------------------------------------

TEST(TestingHelperTest, ThenWithoutWhenFails) {
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}
                              .given(account_opened{"ada"})
                              .then_expect_events(account_opened{"ada"}),
                          "then_* without when(command)");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}.then_expect_events(),
                          "then_* without when(command)");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}.then_expect_no_events(),
                          "then_* without when(command)");
  EXPECT_NONFATAL_FAILURE(aggregate_test<account>{}.then_expect_error(account_error::not_open),
                          "then_* without when(command)");
}

TEST(TestingHelperTest, ThenStateNeedsNoWhen) {
  aggregate_test<account>{}.given(account_opened{"ada"}).then_state([](const account& a) {
    EXPECT_TRUE(a.open());
    EXPECT_EQ(a.owner(), "ada");
  });
}

}  // namespace
