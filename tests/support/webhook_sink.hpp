// Test support: a webhook receiver, a real HTTP server (cpp-httplib) on a free loopback port,
// that records every request it gets (path, body, Idempotency-Key, arrival order, the status it
// answered) and can be told to fail: answer 500, or answer only after `delay` (past a client's
// timeout), for one order (the body's "order_id") or for every request. Stopped (and its
// threads joined) by the destructor, also when the test fails.
//
// Thread-safety: the server's threads record and read the failure modes under mu_; the test's
// thread configures and reads through the same mutex.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace jetsource::test {

class webhook_sink {
 public:
  enum class failure {
    none,
    status_500,  ///< answer 500
    delay,       ///< answer 200 only after `delay`
  };

  struct request {
    std::size_t index =
        0;  ///< the order the sink answered in, from 0 (arrival order unless delayed)
    std::string path, body, idempotency_key, content_type;
    std::string order_id, event;  ///< from the JSON body ("" when it is not JSON)
    std::uint64_t version = 0;
    int status = 0;  ///< what the sink answered
  };

  /// `threads` > 0: the server answers on that many threads (1 under TSan: the packaged,
  /// uninstrumented cpp-httplib 0.11 shows races between its own pool threads); 0: its default.
  explicit webhook_sink(std::chrono::milliseconds delay = std::chrono::seconds{3},
                        std::size_t threads = 0)
      : delay_(delay) {
    if (threads > 0)
      server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.Post(".*",
                 [this](const httplib::Request& rq, httplib::Response& rs) { handle(rq, rs); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    EXPECT_GT(port_, 0) << "webhook sink: cannot bind a loopback port";
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (port_ > 0 && !server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  ~webhook_sink() {
    stopping_ = true;
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  webhook_sink(const webhook_sink&) = delete;
  webhook_sink& operator=(const webhook_sink&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/hooks/orders") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /// How every request is answered (unless its order has a failure of its own).
  void fail_all(failure f) {
    std::lock_guard lock(mu_);
    all_ = f;
  }
  /// How the requests for `order_id` are answered; failure::none heals it.
  void fail_order(const std::string& order_id, failure f) {
    std::lock_guard lock(mu_);
    if (f == failure::none)
      orders_.erase(order_id);
    else
      orders_[order_id] = f;
  }

  std::vector<request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  /// The requests answered 2xx (delivered).
  std::vector<request> delivered() const {
    std::vector<request> out;
    for (auto& r : requests())
      if (r.status >= 200 && r.status < 300) out.push_back(r);
    return out;
  }
  std::size_t count() const {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  /// Waits until `pred(requests)` holds; false after `timeout`.
  template <class Pred>
  bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds{30}) {
    std::unique_lock lock(mu_);
    return arrived_.wait_for(lock, timeout, [&] { return pred(requests_); });
  }

 private:
  void handle(const httplib::Request& rq, httplib::Response& rs) {
    request r;
    r.path = rq.path;
    r.body = rq.body;
    r.idempotency_key = rq.get_header_value("Idempotency-Key");
    r.content_type = rq.get_header_value("Content-Type");
    auto j = nlohmann::json::parse(rq.body, nullptr, false);
    if (j.is_object()) {
      r.order_id = j.value("order_id", "");
      r.event = j.value("event", "");
      if (j.contains("version") && j["version"].is_number_unsigned())
        r.version = j["version"].get<std::uint64_t>();
    }
    failure f = failure::none;
    {
      std::lock_guard lock(mu_);
      auto it = orders_.find(r.order_id);
      f = it != orders_.end() ? it->second : all_;
    }
    if (f == failure::delay) {  // in small steps, so that stopping the sink never waits long
      auto until = std::chrono::steady_clock::now() + delay_;
      while (!stopping_ && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    r.status = f == failure::status_500 ? 500 : 200;
    rs.status = r.status;
    rs.set_content(r.status == 200 ? "{\"ok\":true}" : "{\"ok\":false}", "application/json");
    std::lock_guard lock(mu_);
    r.index = requests_.size();
    requests_.push_back(std::move(r));
    arrived_.notify_all();
  }

  std::chrono::milliseconds delay_;
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable arrived_;
  failure all_ = failure::none;
  std::map<std::string, failure> orders_;
  std::vector<request> requests_;
};

}  // namespace jetsource::test
