// Compiles the examples in the banners of framework/include/jetsource/*.hpp (see CMakeLists.txt):
// each .inc is a header's example, placed where what it uses is declared.
#include <jetsource/aggregate.hpp>
#include <jetsource/backup.hpp>
#include <jetsource/connection.hpp>
#include <jetsource/event.hpp>
#include <jetsource/event_store.hpp>
#include <jetsource/metrics.hpp>
#include <jetsource/personal.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/result.hpp>
#include <jetsource/runtime.hpp>
#include <jetsource/server.hpp>
#include <jetsource/testing/aggregate_test.hpp>

#include <order_system/order.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace result_example {
void example(jetsource::event_store& store, const jetsource::commit& c) {
#include "jetsource_result_hpp.inc"
}
}  // namespace result_example

namespace backup_example {
void example(const jetsource::connection& conn, const jetsource::connection& other_conn) {
#include "jetsource_backup_hpp.inc"
}
}  // namespace backup_example
namespace metrics_example {
std::string example() {
#include "jetsource_metrics_hpp.inc"
  return text;
}
}  // namespace metrics_example

namespace personal_example {
#include "jetsource_personal_hpp.inc"
void example(const jetsource::connection& conn) {
#include "jetsource_personal_hpp_2.inc"
}
}  // namespace personal_example

namespace event_store_example {
void example(const jetsource::connection& conn, const std::string& body) {
#include "jetsource_event_store_hpp.inc"
}
}  // namespace event_store_example

namespace aggregate_example {
using namespace order_system;
#include "jetsource_aggregate_hpp.inc"
static_assert(jetsource::aggregate<order>);
static_assert(jetsource::command_for<pay_order, order>);
}  // namespace aggregate_example

namespace event_example {
struct item_added_v1 {
  static constexpr std::string_view type_name = "ItemAdded";
  std::string sku;
  int qty = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(sku), CEREAL_NVP(qty));
  }
};
#include "jetsource_event_hpp.inc"
static_assert(jetsource::upcastable<item_added>);
static_assert(jetsource::schema_version_of<item_added>() == 2);
}  // namespace event_example

namespace server_example {
int example() {
#include "jetsource_server_hpp.inc"
  return 0;
}
}  // namespace server_example

namespace runtime_example {
int example(const jetsource::connection_options& options) {
#include "jetsource_runtime_hpp.inc"
  return 0;
}
}  // namespace runtime_example

namespace connection_example {
int example() {
#include "jetsource_connection_hpp.inc"
  return 0;
}
}  // namespace connection_example

namespace repository_example {
using namespace order_system;
void example(jetsource::event_store& store) {
#include "jetsource_repository_hpp.inc"
}
}  // namespace repository_example

namespace aggregate_test_example {
using namespace order_system;
void example() {
#include "jetsource_testing_aggregate_test_hpp.inc"
}
}  // namespace aggregate_test_example
