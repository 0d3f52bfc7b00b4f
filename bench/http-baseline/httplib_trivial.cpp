// http-baseline (cpp-httplib): the raw HTTP baseline. A server whose one route answers a fixed
// JSON body, on cpp-httplib's thread pool, as the order-system's HTTP API uses it. Load tests of
// the real routes compare against this. Runs until SIGINT/SIGTERM.
//
//   jetsource-http-baseline-httplib [--port 8081] [--threads 16]
#include <httplib.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <thread>

int main(int argc, char** argv) {
  CLI::App app{"trivial-handler HTTP server on cpp-httplib (the raw HTTP baseline)"};
  int port = 8081;
  std::size_t threads = 16;
  app.add_option("--port", port, "port on 127.0.0.1");
  app.add_option("--threads", threads, "worker threads");
  CLI11_PARSE(app, argc, argv);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // As jetsource::http configures it: without TCP_NODELAY the header and body writes meet
  // Nagle and delayed ACKs (~40 ms a response); keep-alive beyond cpp-httplib's default 5
  // requests per connection.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000);
  server.Get("/ping", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"ok":true})", "application/json");
  });
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  std::thread listener([&server] { server.listen_after_bind(); });
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
  listener.join();
  return 0;
}
