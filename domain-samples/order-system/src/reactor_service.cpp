// The order-system's reactors, run (react, serve --react) and read (reactors ..., GET /reactors)
// the same way by the command line and the HTTP API (reactor_service.hpp).
#include "reactor_service.hpp"

#include <fmt/format.h>

#include <cctype>
#include <future>

namespace order_system::cli {

bool is_reactor_name(std::string_view name) {
  for (auto n : reactor_names)
    if (n == name) return true;
  return false;
}

void add_reactor_run_options(CLI::App* sub, reactor_run_options& o) {
  sub->add_option("--instance", o.instance,
                  "this member's name in its groups (default: a random one); give each member a "
                  "stable one")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            bool ok = !v.empty();
            for (char c : v)
              ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
            return ok ? "" : "an instance name is letters, digits, '_' and '-'";
          },
          "NAME"));
  sub->add_option("--webhook", o.webhook,
                  "POST OrderPlaced/OrderShipped notifications to this URL (default: the "
                  "notification reactor does not run)");
  sub->add_option("--lease-ms", o.lease_ms,
                  "a killed member's partitions are taken over after this (default 6000)")
      ->check(CLI::Range(300, 600000));
  sub->add_option("--webhook-timeout-ms", o.webhook_timeout_ms,
                  "how long the webhook may take to answer (default 5000)")
      ->check(CLI::Range(10, 600000));
}

jetsource::result<std::optional<webhook>> prepare_reactors(const reactor_run_options& o) {
  if (o.webhook.empty()) return std::optional<webhook>{};
  webhook_options w;
  w.url = o.webhook;
  w.timeout = std::chrono::milliseconds(o.webhook_timeout_ms);
  JETSOURCE_TRY(hook, webhook::make(std::move(w)));
  return std::optional<webhook>(std::move(hook));
}

jetsource::result<running_reactors> running_reactors::start(context& ctx,
                                                            const reactor_run_options& o,
                                                            std::optional<webhook> hook) {
  JETSOURCE_TRY(stocks, ctx.stocks());  // the stream exists before the groups
  JETSOURCE_TRY(rt, ctx.runtime());
  jetsource::reactor_options ro;
  ro.stream = orders_stream().stream;
  ro.instance = o.instance;
  ro.lease = std::chrono::milliseconds(o.lease_ms);
  running_reactors out;
  std::vector<jetsource::reactor> reactors{inventory_reactor(*stocks)};
  if (hook) {
    out.webhook_url_ = hook->url();
    reactors.push_back(notifications_reactor(std::move(*hook)));
  }
  for (auto& r : reactors) {
    auto m = jetsource::reactor_member::start(rt->conn, r, ro);
    if (!m) {
      out.stop();
      auto e = std::move(m).error();
      e.message = fmt::format("{}: {}", r.name(), e.message);
      return e;
    }
    out.members_.push_back(std::move(m).value());
  }
  return out;
}

int running_reactors::stop() {
  std::vector<std::future<jetsource::result<void>>> stops;
  for (auto& m : members_)
    stops.push_back(std::async(std::launch::async, [&m] { return m.stop(); }));
  int code = exit_ok;
  for (std::size_t i = 0; i < members_.size(); ++i)
    if (auto r = stops[i].get(); !r && code == exit_ok)
      code = fail("stop " + members_[i].instance(), r.error());
  members_.clear();
  return code;
}

int running_reactors::report_failures() {
  reported_.resize(members_.size(), false);
  int code = exit_ok;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    auto failure = members_[i].failure();
    if (!failure) continue;
    if (!reported_[i]) fail("react", *failure);
    reported_[i] = true;
    code = exit_failure;
  }
  return code;
}

std::string running_reactors::describe() const {
  return fmt::format("{}{}", inventory_reactor_name,
                     webhook_url_.empty()
                         ? ""
                         : fmt::format(", {} -> {}", notifications_reactor_name, webhook_url_));
}

const std::string& running_reactors::instance() const {
  static const std::string none;
  return members_.empty() ? none : members_.front().instance();
}

nlohmann::ordered_json parked_view(std::string_view reactor, const jetsource::parked_aggregate& p) {
  return {{"reactor", reactor},
          {"aggregate_type", p.aggregate_type},
          {"aggregate_id", p.aggregate_id},
          {"partition", p.partition},
          {"sequence", p.sequence},
          {"version", p.version},
          {"event_type", p.event_type},
          {"error", p.error},
          {"attempts", p.attempts},
          {"first_failed_at", p.first_failed_at},
          {"last_failed_at", p.last_failed_at},
          {"request", p.request}};
}

nlohmann::ordered_json reactor_status_view(std::string_view name,
                                           const std::optional<jetsource::reactor_status>& s) {
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  nlohmann::ordered_json parked = nlohmann::ordered_json::array();
  if (s) {
    for (const auto& m : s->members)
      members.push_back({{"instance", m.instance},
                         {"host", m.host},
                         {"pid", m.pid},
                         {"partitions", m.partitions.size()},
                         {"position", m.position},
                         {"pending", m.pending}});
    for (const auto& p : s->parked) parked.push_back(parked_view(name, p));
  }
  return {{"reactor", name},
          {"state", s ? "started" : "never started"},
          {"mode", s ? s->mode : ""},
          {"position", s ? s->position : 0},
          {"pending", s ? s->pending : 0},
          {"members", members},
          {"parked", parked},
          {"dead_letters", s ? s->dead_letters : 0}};
}

namespace {

// The status of `name`, nullopt when it never ran on the stream.
jetsource::result<std::optional<jetsource::reactor_status>> status_of(
    const jetsource::connection& conn, std::string_view name) {
  auto s = jetsource::read_reactor_status(conn, orders_stream().stream, name);
  if (!s && s.error().is(jetsource::errc::not_found))
    return std::optional<jetsource::reactor_status>{};
  if (!s) {
    auto e = std::move(s).error();
    e.message = fmt::format("status of {}: {}", name, e.message);
    return e;
  }
  return std::optional(std::move(s).value());
}

}  // namespace

jetsource::result<nlohmann::ordered_json> reactor_statuses_view(const jetsource::connection& conn) {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (auto name : reactor_names) {
    JETSOURCE_TRY(s, status_of(conn, name));
    all.push_back(reactor_status_view(name, s));
  }
  return all;
}

jetsource::result<nlohmann::ordered_json> reactor_dead_letters_view(
    const jetsource::connection& conn, std::string_view name) {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (auto n : reactor_names) {
    if (!name.empty() && n != name) continue;
    JETSOURCE_TRY(s, status_of(conn, n));
    if (!s) continue;  // never ran: none
    for (const auto& p : s->parked) all.push_back(parked_view(n, p));
  }
  return all;
}

}  // namespace order_system::cli
