// The order-system's reactors: inventory (a process manager) and notifications (a webhook).
#include <order_system/reactors.hpp>
#include <order_system/stream.hpp>

#include <nlohmann/json.hpp>

namespace order_system {

jetsource::reactor inventory_reactor(jetsource::repository<stock>& stocks) {
  return jetsource::reactor(std::string(inventory_reactor_name))
      .follow<order>(orders_stream())
      .on<order_paid>([&stocks](jetsource::reaction_context& cx,
                                const order_paid& e) -> jetsource::result<void> {
        // The lines are the event's: a replay issues the same commands, in the same order, with
        // the same command ids. Stock also counts each (order, line) once by itself.
        for (std::size_t i = 0; i < e.lines.size(); ++i) {
          const auto& line = e.lines[i];
          record_sale sale{std::string(cx.aggregate_id()), static_cast<std::int64_t>(i), line.qty};
          auto r = cx.execute(stocks, line.sku, sale);
          if (!r) {
            auto err = std::move(r).error();
            err.message = fmt::format("order {} line {} ({}): {}", cx.aggregate_id(), i, line.sku,
                                      err.message);
            return err;
          }
        }
        return jetsource::success();
      });
}

std::string notification_body(std::string_view event, std::string_view order_id,
                              std::string_view customer_id, std::uint64_t version) {
  return nlohmann::ordered_json{
      {"event", event}, {"order_id", order_id}, {"customer_id", customer_id}, {"version", version}}
      .dump();
}

namespace {
template <class E>
auto notify(std::shared_ptr<const webhook> hook) {
  return [hook](jetsource::reaction_context& cx, const E& e) -> jetsource::result<void> {
    auto body = notification_body(E::type_name, cx.aggregate_id(), e.customer_id, cx.version());
    return hook->post(body, cx.idempotency_key());
  };
}
}  // namespace

jetsource::reactor notifications_reactor(webhook hook) {
  auto shared = std::make_shared<const webhook>(std::move(hook));
  return jetsource::reactor(std::string(notifications_reactor_name))
      .follow<order>(orders_stream())
      .on<order_placed>(notify<order_placed>(shared))
      .on<order_shipped>(notify<order_shipped>(shared));
}

}  // namespace order_system
