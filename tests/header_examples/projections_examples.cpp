// Compiles the examples in the banners of projections/include/jetsource/*.hpp (see
// CMakeLists.txt): each .inc is a header's example, placed where what it uses is declared.
#include <jetsource/migrations.hpp>
#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>
#include <jetsource/rebuild.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>
#include <jetsource/sqlite.hpp>
#include <jetsource/testing/projection_test.hpp>

#include <order_system/order.hpp>
#include <order_system/read_models.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string_view>

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
