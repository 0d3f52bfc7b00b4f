// A projector process for the crash-loop test: runs the "balances" projection until SIGTERM.
//   jetsource-test-projector --nats-url URL --db FILE [--workers N] [--ack-wait-ms MS]
//                            [--rebuild]   (rebuild the database instead, then exit)
//                            [--apply-delay-us US]  (slow handlers)
#include <jetsource/projector.hpp>
#include <jetsource/rebuild.hpp>

#include "balances_projection.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  jetsource::block_termination_signals();
  std::string url, db;
  int workers = 4, ack_wait_ms = 1000;
  CLI::App app{"balances projector (test tool)"};
  app.add_option("--nats-url", url)->required();
  app.add_option("--db", db)->required();
  app.add_option("--workers", workers);
  app.add_option("--ack-wait-ms", ack_wait_ms);
  bool rebuild = false;
  app.add_flag("--rebuild", rebuild);
  int delay_us = 0;
  app.add_option("--apply-delay-us", delay_us, "each deposit handler sleeps this long");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  jetsource::test::hooks().delay_us = delay_us;

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
  if (rebuild) {
    auto r = jetsource::rebuild(*conn, jetsource::test::balances_projection(), o);
    if (!r) {
      spdlog::error("{}", r.error());
      return 1;
    }
    return 0;
  }
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
