// The read models' rows as JSON, shared by the command line (`query ... --json`, `projections
// status --json`) and the HTTP API (GET /orders/{id}, /customers/{id}, /products/{sku},
// /projections): one shape for both.
//
// Thread-safety: free functions; each opens its read model's current file read-only per call
// (a rebuild may have switched it), so they may run on several threads at once.
#pragma once

#include "cli.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace order_system::cli {

/// {"order_id","customer_id","status","items":[{"sku","qty","unit_price_cents"}],"item_count",
/// "total_cents","version"}; nullopt when the read model has no such order. errc::not_found when
/// the read model was not built yet.
jetsource::result<std::optional<nlohmann::ordered_json>> order_view(const globals& g,
                                                                    const std::string& order_id);

/// {"customer_id","orders_created","orders_placed","orders_paid","orders_shipped",
/// "orders_cancelled","lifetime_value_cents","name","email","forgotten"}; name and e-mail are
/// null when never given or forgotten. nullopt when there is no such customer.
jetsource::result<std::optional<nlohmann::ordered_json>> customer_view(
    const globals& g, const std::string& customer_id);

/// {"sku","units_sold","revenue_cents"}; nullopt when nothing of the SKU was paid yet.
jetsource::result<std::optional<nlohmann::ordered_json>> product_view(const globals& g,
                                                                      const std::string& sku);

/// One read model's status as `projections status --json` prints it.
nlohmann::ordered_json status_view(const jetsource::projection_status& s);

/// Every read model's status (an array of status_view), read from any process.
jetsource::result<nlohmann::ordered_json> statuses_view(const jetsource::connection& conn,
                                                        const globals& g);

/// One dead letter of a read model as `projections dead-letters --json` prints it:
/// {"projection","sequence","aggregate_type","aggregate_id","first_version","last_version","kind",
/// "event_type","error","attempts","first_failed_at","last_failed_at"}.
nlohmann::ordered_json dead_letter_view(std::string_view projection,
                                        const jetsource::dead_letter& d);

}  // namespace order_system::cli
