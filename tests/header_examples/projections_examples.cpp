// Compiles the examples in the banners of projections/include/jetsource/*.hpp (see
// CMakeLists.txt): each .inc is a header's example, placed where what it uses is declared.
#include <jetsource/migrations.hpp>
#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/reactor.hpp>
#include <jetsource/rebuild.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>
#include <jetsource/sqlite.hpp>
#include <jetsource/testing/projection_test.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>
#include <order_system/stream.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string_view>
#include <variant>

namespace projection_example {
void example() {
#include "jetsource_projection_hpp.inc"
}
}  // namespace projection_example

namespace projector_example {
using namespace order_system;
using namespace std::chrono_literals;
void example(jetsource::result<jetsource::runtime>& rt, jetsource::repository<order>& orders) {
#include "jetsource_projector_hpp.inc"
}
}  // namespace projector_example

namespace rebuild_example {
using namespace order_system;
void example(const jetsource::connection& conn, const jetsource::projector_options& live_options) {
#include "jetsource_rebuild_hpp.inc"
}
}  // namespace rebuild_example

namespace sqlite_example {
jetsource::result<void> example(std::string_view id) {
#include "jetsource_sqlite_hpp.inc"
  return jetsource::success();
}
}  // namespace sqlite_example

namespace migrations_example {
jetsource::result<void> example(jetsource::sqlite::database& db) {
#include "jetsource_migrations_hpp.inc"
  return jetsource::success();
}
}  // namespace migrations_example

namespace projection_test_example {
using namespace order_system;
void example() {
#include "jetsource_testing_projection_test_hpp.inc"
}
}  // namespace projection_test_example

namespace reactor_example {
// A stand-in for the sample's Stock aggregate (issue 12), enough for the example to compile.
struct sale_recorded {
  static constexpr std::string_view type_name = "SaleRecorded";
  int units = 0;
  template <class Ar>
  void serialize(Ar& ar) {
    ar(CEREAL_NVP(units));
  }
};
struct record_sale {
  int units = 0;
};
struct stock_item {
  static constexpr std::string_view type_name = "Stock";
  using event = std::variant<sale_recorded>;
  jetsource::decision<event> handle(const record_sale& c) const { return sale_recorded{c.units}; }
  void apply(const sale_recorded&) {}
};
void example(jetsource::result<jetsource::runtime>& rt, jetsource::repository<stock_item>& stock) {
  using order_system::orders_stream;
#include "jetsource_reactor_hpp.inc"
}
}  // namespace reactor_example
