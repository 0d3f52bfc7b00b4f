// The order-system read models: three projections, each its own SQLite file with its own
// migrations (migrations/order_summary, migrations/customer_stats, migrations/product_sales).
#pragma once

#include <jetsource/projection.hpp>

#include <vector>

namespace order_system {

/// Per order: customer, status, lines, item count, total, version.
jetsource::projection order_summary();
/// Per customer: orders created / placed / paid / shipped / cancelled, lifetime value.
jetsource::projection customer_stats();
/// Per SKU: units sold and revenue, counted when an order is paid.
jetsource::projection product_sales();

/// All three, in that order.
std::vector<jetsource::projection> read_models();

}  // namespace order_system
