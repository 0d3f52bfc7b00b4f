// The bank sample domain: a small Account aggregate (used by the write-side demo and the tests).
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/event.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bank {

// -- events ----------------------------------------------------------------------------------
struct account_opened {
  static constexpr std::string_view type_name = "AccountOpened";
  std::string owner;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(owner));
  }
};

/// Schema 1 of "Deposited": a whole-unit amount, no note. Kept to read old history.
struct deposited_v1 {
  static constexpr std::string_view type_name = "Deposited";
  static constexpr int schema_version = 1;
  std::int64_t amount = 0;  // whole currency units
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(amount));
  }
};

struct deposited {
  static constexpr std::string_view type_name = "Deposited";
  static constexpr int schema_version = 2;
  using previous = deposited_v1;
  static deposited upcast(const deposited_v1& old) { return {old.amount * 100, "(v1)"}; }

  std::int64_t amount_cents = 0;
  std::string note;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(amount_cents), CEREAL_NVP(note));
  }
};

struct withdrawn {
  static constexpr std::string_view type_name = "Withdrawn";
  std::int64_t amount_cents = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(amount_cents));
  }
};

struct account_closed {  // no fields: no serialize needed ("data":{})
  static constexpr std::string_view type_name = "AccountClosed";
};

// -- commands and errors ---------------------------------------------------------------------
struct open_account {
  std::string owner;
  std::int64_t initial_deposit_cents = 0;  // > 0: also emits Deposited in the same commit
};
struct deposit {
  std::int64_t amount_cents = 0;
  std::string note;
};
struct withdraw {
  std::int64_t amount_cents = 0;
};
struct close_account {};

enum class account_error { already_open, not_open, invalid_amount, insufficient_funds, closed };

inline std::string_view describe(account_error e) {
  switch (e) {
    case account_error::already_open:
      return "the account is already open";
    case account_error::not_open:
      return "the account is not open";
    case account_error::invalid_amount:
      return "amounts must be positive";
    case account_error::insufficient_funds:
      return "insufficient funds";
    case account_error::closed:
      return "the account is closed";
  }
  return "?";
}

// -- the aggregate ---------------------------------------------------------------------------
class account {
 public:
  static constexpr std::string_view type_name = "Account";
  using event = std::variant<account_opened, deposited, withdrawn, account_closed>;

  jetsource::decision<event> handle(const open_account& c) const {
    if (open_ || closed_) return account_error::already_open;
    if (c.initial_deposit_cents < 0) return account_error::invalid_amount;
    if (c.initial_deposit_cents == 0) return account_opened{c.owner};
    return jetsource::emit(account_opened{c.owner}, deposited{c.initial_deposit_cents, "initial"});
  }
  jetsource::decision<event> handle(const deposit& c) const {
    if (auto e = must_be_open()) return *e;
    if (c.amount_cents <= 0) return account_error::invalid_amount;
    return deposited{c.amount_cents, c.note};
  }
  jetsource::decision<event> handle(const withdraw& c) const {
    if (auto e = must_be_open()) return *e;
    if (c.amount_cents <= 0) return account_error::invalid_amount;
    if (c.amount_cents > balance_cents_)
      return jetsource::reject(
          account_error::insufficient_funds,
          "balance " + std::to_string(balance_cents_) + " < " + std::to_string(c.amount_cents));
    return withdrawn{c.amount_cents};
  }
  jetsource::decision<event> handle(const close_account&) const {
    if (closed_) return jetsource::emit();  // closing twice changes nothing
    if (auto e = must_be_open()) return *e;
    return account_closed{};
  }

  void apply(const account_opened& e) {
    open_ = true;
    owner_ = e.owner;
  }
  void apply(const deposited& e) {
    balance_cents_ += e.amount_cents;
    notes_.push_back(e.note);
  }
  void apply(const withdrawn& e) { balance_cents_ -= e.amount_cents; }
  void apply(const account_closed&) {
    open_ = false;
    closed_ = true;
  }

  bool open() const { return open_; }
  bool closed() const { return closed_; }
  const std::string& owner() const { return owner_; }
  std::int64_t balance_cents() const { return balance_cents_; }
  const std::vector<std::string>& notes() const { return notes_; }

  // State for snapshots.
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(open_), CEREAL_NVP(closed_), CEREAL_NVP(owner_), CEREAL_NVP(balance_cents_),
      CEREAL_NVP(notes_));
  }

 private:
  std::optional<account_error> must_be_open() const {
    if (closed_) return account_error::closed;
    if (!open_) return account_error::not_open;
    return std::nullopt;
  }

  bool open_ = false;
  bool closed_ = false;
  std::string owner_;
  std::int64_t balance_cents_ = 0;
  std::vector<std::string> notes_;
};

}  // namespace bank
