// The order-system's reactors (issue 12, docs/reactors.md):
//
// - "inventory", a process manager: on OrderPaid, one record_sale per paid line to the line's
//   SKU's Stock. The lines come with the event (a paid order's lines never change), so a replay
//   issues the same commands in the same order; their command ids come from the event
//   (reaction_context::execute), and Stock counts an (order, line) once whatever the id.
// - "notifications", a side-effect reactor: on OrderPlaced and OrderShipped, POSTs
//   {"event","order_id","customer_id","version"} to a webhook with
//   `Idempotency-Key: <reaction_context::idempotency_key()>`. A non-2xx answer or a timeout is
//   an error: the engine retries with backoff, then parks the order.
//
// Thread-safety: the handlers may run on several worker threads at once (one order always on
// the same one); the repository and the webhook they use are safe to share and must outlive
// the reactor.
//
//   jetsource::repository<order_system::stock> stocks{store};
//   auto inventory = order_system::inventory_reactor(stocks);
//   auto hook = order_system::webhook::make({.url = url});
//   auto notifications = order_system::notifications_reactor(*hook);
#pragma once

#include <order_system/order.hpp>
#include <order_system/stock.hpp>
#include <order_system/webhook.hpp>

#include <jetsource/reactor.hpp>
#include <jetsource/repository.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace order_system {

/// The reactors' names (their groups' buckets are jsr-ORDERS-<name>).
inline constexpr std::string_view inventory_reactor_name = "inventory";
inline constexpr std::string_view notifications_reactor_name = "notifications";

/// Follows orders.Order.>; on OrderPaid records each line's units on its SKU's Stock.
jetsource::reactor inventory_reactor(jetsource::repository<stock>& stocks);

/// Follows orders.Order.>; on OrderPlaced and OrderShipped POSTs a notification to `hook`.
jetsource::reactor notifications_reactor(webhook hook);

/// The notification body, keys in this order: {"event","order_id","customer_id","version"}.
std::string notification_body(std::string_view event, std::string_view order_id,
                              std::string_view customer_id, std::uint64_t version);

}  // namespace order_system
