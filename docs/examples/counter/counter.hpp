// The counter: its event, command and errors, the aggregate, and a read model of it.
#pragma once

#include <jetsource/aggregate.hpp>
#include <jetsource/projection.hpp>

#include <string_view>
#include <variant>

// An event: a stable wire name and named fields.
struct counter_incremented {
  static constexpr std::string_view type_name = "CounterIncremented";
  int by = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(by));
  }
};

// A command and the domain's errors.
struct increment {
  int by = 1;
};
enum class counter_error { non_positive, too_big };
inline std::string_view describe(counter_error e) {
  return e == counter_error::non_positive ? "increments must be positive" : "the counter is full";
}

// The aggregate: decide in handle, evolve in apply.
class counter {
 public:
  static constexpr std::string_view type_name = "Counter";
  using event = std::variant<counter_incremented>;

  jetsource::decision<event> handle(const increment& c) const {
    if (c.by <= 0) return counter_error::non_positive;
    if (value_ + c.by > 1000) return counter_error::too_big;
    return counter_incremented{c.by};
  }
  void apply(const counter_incremented& e) { value_ += e.by; }
  int value() const { return value_; }
  // The state a snapshot keeps: with it, the repository keeps a snapshot at each counter's last
  // commit and a cold load reads that instead of the history (docs/aggregates.md, "Snapshots").
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(value_));
  }

 private:
  int value_ = 0;
};

// A read model: every counter's value, in the table of migrations/counter_totals/.
inline jetsource::projection counter_totals() {
  return jetsource::projection("counter_totals", 1)
      .follow("counters.Counter.>")
      .on<counter_incremented>([](jetsource::projection_context& cx, const counter_incremented& e) {
        return cx.execute(
            "INSERT INTO counter_totals (counter_id, value) VALUES (?1, ?2)"
            " ON CONFLICT (counter_id) DO UPDATE SET value = value + ?2",
            cx.aggregate_id(), e.by);
      });
}
