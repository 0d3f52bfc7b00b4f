// Where the order-system bounded context lives: its stream and subjects (one for every process
// of the sample: the command line, the projections, the tests).
#pragma once

#include <jetsource/event_store.hpp>

namespace order_system {

/// Stream ORDERS, subjects orders.Order.<partition>.<order id>.
inline jetsource::store_options orders_stream() {
  return {.stream = "ORDERS", .subject_prefix = "orders"};
}

}  // namespace order_system
