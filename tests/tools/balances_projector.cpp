// A projector process for the crash-loop test: runs the "balances" projection until SIGTERM.
//   jetsource-test-projector --nats-url URL --db FILE [--workers N] [--ack-wait-ms MS]
#include <jetsource/projector.hpp>

#include "balances_projection.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  jetsource::block_termination_signals();
  std::string url, db;
  int workers = 4, ack_wait_ms = 1000;
  CLI::App app{"balances projector (test tool)"};
  app.add_option("--nats-url", url)->required();
  app.add_option("--db", db)->required();
  app.add_option("--workers", workers);
  app.add_option("--ack-wait-ms", ack_wait_ms);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  jetsource::connection_options co;
  co.urls = {url};
  auto conn = jetsource::connection::connect(co);
  if (!conn) {
    spdlog::error("{}", conn.error());
    return 1;
  }
  jetsource::projector_options o;
  o.stream = "TEST";
  o.database = db;
  o.workers = workers;
  o.ack_wait = std::chrono::milliseconds(ack_wait_ms);
  auto p = jetsource::projector::start(*conn, jetsource::test::balances_projection(), o);
  if (!p) {
    spdlog::error("{}", p.error());
    return 1;
  }
  jetsource::wait_for_termination();
  auto stopped = p->stop();
  if (!stopped) {
    spdlog::error("{}", stopped.error());
    return 1;
  }
  return jetsource::test::hooks().order_violations == 0 ? 0 : 3;
}
