// Aggregate rules through jetsource::testing::aggregate_test (given / when / then, no server).
#include <jetsource/testing/aggregate_test.hpp>

#include "test_domain.hpp"

using jetsource::testing::aggregate_test;
using namespace bank;

TEST(AccountTest, OpensWithInitialDepositInOneDecision) {
  aggregate_test<account>{}
      .when(open_account{"ada", 500})
      .then_expect_events(account_opened{"ada"}, deposited{500, "initial"})
      .then_state([](const account& a) {
        EXPECT_TRUE(a.open());
        EXPECT_EQ(a.balance_cents(), 500);
      });
}

TEST(AccountTest, CannotOpenTwice) {
  aggregate_test<account>{}
      .given(account_opened{"ada"})
      .when(open_account{"bob"})
      .then_expect_error(account_error::already_open);
}

TEST(AccountTest, CannotOverdraw) {
  aggregate_test<account>{}
      .given(account_opened{"ada"}, deposited{100, ""})
      .when(withdraw{101})
      .then_expect_error(account_error::insufficient_funds);
}

TEST(AccountTest, WithdrawsWhatIsThere) {
  aggregate_test<account>{}
      .given(account_opened{"ada"}, deposited{100, ""})
      .when(withdraw{100})
      .then_expect_events(withdrawn{100})
      .then_state([](const account& a) { EXPECT_EQ(a.balance_cents(), 0); });
}

TEST(AccountTest, ClosingTwiceChangesNothing) {
  aggregate_test<account>{}
      .given(account_opened{"ada"}, account_closed{})
      .when(close_account{})
      .then_expect_no_events();
}

TEST(AccountTest, DepositNeedsAnOpenAccount) {
  aggregate_test<account>{}.when(deposit{5, ""}).then_expect_error(account_error::not_open);
  aggregate_test<account>{}
      .given(account_opened{"ada"}, account_closed{})
      .when(deposit{5, ""})
      .then_expect_error(account_error::closed);
}

TEST(AccountTest, RejectsNonPositiveAmounts) {
  aggregate_test<account>{}
      .given(account_opened{"ada"})
      .when(deposit{0, ""})
      .then_expect_error(account_error::invalid_amount);
  aggregate_test<account>{}
      .given(account_opened{"ada"})
      .when(withdraw{-1})
      .then_expect_error(account_error::invalid_amount);
}

TEST(DecisionTest, RejectionCarriesTheDomainErrorAndReason) {
  account a;
  a.apply(account_opened{"ada"});
  auto d = a.handle(withdraw{10});
  ASSERT_FALSE(d.accepted());
  auto e = d.to_error();
  EXPECT_TRUE(e.is(jetsource::errc::rejected));
  EXPECT_TRUE(e.is(account_error::insufficient_funds));
  EXPECT_FALSE(e.is(account_error::closed));
  EXPECT_EQ(e.message, "balance 0 < 10");
  EXPECT_EQ(jetsource::to_string(e), "rejected: balance 0 < 10");
}

namespace jetsource_test_enums {
enum class plain_error { too_early, too_late };  // no describe(): the generic message
enum legacy_error { legacy_none, legacy_bad };   // unscoped, no describe()
}  // namespace jetsource_test_enums

TEST(DecisionTest, ARejectionWithoutDescribeNamesTheEnumeratorReadably) {
  using jetsource_test_enums::plain_error;
  jetsource::decision<account::event> late = plain_error::too_late;
  EXPECT_EQ(late.to_error().message,
            "rejected by a domain rule (jetsource_test_enums::plain_error::too_late)");
  jetsource::decision<account::event> unnamed = static_cast<plain_error>(200);
  EXPECT_EQ(unnamed.to_error().message,
            "rejected by a domain rule (jetsource_test_enums::plain_error 200)");
  jetsource::decision<account::event> legacy = jetsource_test_enums::legacy_bad;
  EXPECT_EQ(legacy.to_error().message,
            "rejected by a domain rule (jetsource_test_enums::legacy_error 1)");
  EXPECT_TRUE(late.to_error().is(plain_error::too_late));
}
