// Test support: `order-system serve --http 127.0.0.1:0` against the fixture's real nats-server,
// the port it chose read from its stderr, stopped (SIGTERM, by PID) at the end of each test.
#pragma once

#include "order_cli_fixture.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

namespace jetsource::test {

class http_serve_test : public order_cli_test {
 protected:
  void TearDown() override {
    if (serve_ > 0) {
      ::kill(serve_, SIGTERM);
      wait(serve_);
    }
    order_cli_test::TearDown();
  }

  // Starts serve (with `extra` options, e.g. --react) and waits (up to 30 s) until it says
  // where it listens.
  void start_serve(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"serve", "--http", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    serve_ = spawn(args, server_->url());
    ASSERT_GT(serve_, 0);
    const std::regex listening{R"(HTTP API on http://127\.0\.0\.1:(\d+))"};
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      auto err = slurp(files_[serve_].second);
      if (std::regex_search(err, m, listening))
        port_ = std::stoi(m[1]);
      else
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
      int status = 0;
      ASSERT_EQ(::waitpid(serve_, &status, WNOHANG), 0) << "serve exited: " << err;
    }
    ASSERT_NE(port_, 0) << "serve never said where it listens: " << slurp(files_[serve_].second);
  }

  // SIGTERM to serve; returns its outcome.
  outcome stop_serve() {
    ::kill(serve_, SIGTERM);
    auto o = wait(serve_);
    serve_ = -1;
    return o;
  }

  pid_t serve_ = -1;
  int port_ = 0;
};

}  // namespace jetsource::test
