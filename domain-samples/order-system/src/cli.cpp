// The order-system command line: the shared context and the mapping of errors to exit codes.
#include "cli.hpp"

#include <fmt/format.h>

#include <csignal>
#include <ctime>

namespace order_system::cli {

jetsource::result<jetsource::runtime> context::open_runtime() {
  jetsource::connection_options o;
  o.name = "order-system";
  // --nats-url nats://h1:p1,nats://h2:p2,...: nats.c picks one and fails over to the others.
  for (std::size_t start = 0; start < globals_.nats_url.size();) {
    auto comma = globals_.nats_url.find(',', start);
    if (comma == std::string::npos) comma = globals_.nats_url.size();
    if (comma > start) o.urls.push_back(globals_.nats_url.substr(start, comma - start));
    start = comma + 1;
  }
  apply_security_options(globals_, o);
  auto dir = globals_.data_dir / "nats";
  auto rt = jetsource::runtime::open(o, dir);
  if (!rt && o.urls.empty())
    rt.error().message = fmt::format("cannot start the embedded nats-server in {}: {}",
                                     dir.string(), rt.error().message);
  else if (!rt)
    rt.error().message =
        fmt::format("cannot connect to {}: {}", globals_.nats_url, rt.error().message);
  return rt;
}

context::~context() {
  if (keys_) jetsource::key_store::uninstall();
}

jetsource::result<jetsource::runtime*> context::runtime() {
  if (!runtime_) {
    JETSOURCE_TRY(rt, open_runtime());
    runtime_.emplace(std::move(rt));
  }
  if (!keys_) {  // every process that encodes or decodes orders needs it (personal fields)
    auto k = jetsource::key_store::open(
        runtime_->conn, {.stream = orders_stream().stream, .replicas = globals_.replicas});
    if (!k) {
      auto e = std::move(k).error();
      e.message =
          fmt::format("cannot open the key store of {}: {}", orders_stream().stream, e.message);
      return e;
    }
    keys_.emplace(std::move(k).value());
    keys_->install();
  }
  return &*runtime_;
}

jetsource::result<jetsource::key_store*> context::keys() {
  JETSOURCE_TRY(runtime());
  return &*keys_;
}

jetsource::result<jetsource::event_store*> context::store() {
  if (!store_) {
    JETSOURCE_TRY(rt, runtime());
    auto options = orders_stream();
    options.replicas = globals_.replicas;
    auto s = jetsource::event_store::open(rt->conn, options);
    if (!s) {
      auto e = std::move(s).error();
      e.message = fmt::format("cannot open the stream {}: {}", orders_stream().stream, e.message);
      return e;
    }
    store_.emplace(std::move(s).value());
  }
  return &*store_;
}

jetsource::result<jetsource::repository<order>*> context::orders() {
  if (!orders_) {
    JETSOURCE_TRY(s, store());
    orders_ = std::make_unique<jetsource::repository<order>>(*s);
  }
  return orders_.get();
}

jetsource::result<jetsource::repository<stock>*> context::stocks() {
  if (!stocks_) {
    JETSOURCE_TRY(s, store());
    stocks_ = std::make_unique<jetsource::repository<stock>>(*s);
  }
  return stocks_.get();
}

bool termination_requested(std::chrono::milliseconds timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>(timeout.count() % 1000) * 1'000'000};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

CLI::Validator subject_token(std::string what) {
  return CLI::Validator(
      [what](std::string& value) -> std::string {
        auto ok = jetsource::validate_token(what, value);
        return ok ? std::string{} : ok.error().message;
      },
      "TOKEN");
}

std::string exit_codes_footer(std::initializer_list<exit_code> codes) {
  std::string text = "Exit codes:";
  for (auto c : codes) {
    const char* what = "";
    switch (c) {
      case exit_ok:
        what = "ok";
        break;
      case exit_failure:
        what = "infrastructure (no server, a broken stream, ...)";
        break;
      case exit_usage:
        what = "bad usage or an invalid argument";
        break;
      case exit_rejected:
        what = "rejected by a rule of the order's state";
        break;
      case exit_not_found:
        what = "not found";
        break;
    }
    text += fmt::format("\n  {}  {}", static_cast<int>(c), what);
  }
  return text;
}

void add_exit_code_footers(CLI::App& app) {
  auto all = [](CLI::App*) { return true; };
  for (auto* group : app.get_subcommands(all)) {
    const bool query = group->get_name() == "query";
    auto footer = query ? exit_codes_footer({exit_ok, exit_failure, exit_usage, exit_not_found})
                        : exit_codes_footer({exit_ok, exit_failure, exit_usage});
    if (group->get_footer().empty()) group->footer(footer);
    for (auto* sub : group->get_subcommands(all))
      if (sub->get_footer().empty()) sub->footer(footer);
  }
}

int exit_code_of(const jetsource::error& e) {
  switch (e.code) {
    case jetsource::errc::invalid_argument:
    case jetsource::errc::invalid_id:
    case jetsource::errc::payload_too_large:  // a command too big for one commit
    case jetsource::errc::encode_failed:      // a command with a field that cannot be stored
      return exit_usage;
    case jetsource::errc::rejected:
      return exit_rejected;
    case jetsource::errc::not_found:
      return exit_not_found;
    default:
      return exit_failure;
  }
}

int fail(std::string_view what, const jetsource::error& e) {
  int code = exit_code_of(e);
  // A domain error's message is the sentence itself; other errors keep their code's name.
  fmt::print(stderr, "order-system: {}: {}\n", what,
             e.rejection ? e.message : jetsource::to_string(e));
  return code;
}

}  // namespace order_system::cli
