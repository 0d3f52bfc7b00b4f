// jetsource::http::server on cpp-httplib: every method and path goes to one dispatcher, which
// matches the routes (path parameters, 404, 405) and turns exceptions into a 500 problem.
//
// Threads: start()/stop() on the owner's thread; the listener thread accepts and hands each
// connection to a worker thread of connection_pool (a thread per open connection, up to
// options.threads; ADR 0018), which reads, dispatches and writes its requests. Routes are fixed
// before start() and only read after. The observer's timing of a request lives in a thread_local of
// the worker that handles it (routing, handler and write all happen on that thread).
#include <jetsource/http/server.hpp>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace jetsource::http {

namespace {

// A route's pattern split at '/': each segment a literal or a {name} parameter (a whole
// segment, matching any non-empty segment).
struct route_entry {
  std::string method;
  std::string pattern;
  std::vector<std::string> segments;  // literal text, or the parameter's name
  std::vector<bool> is_param;
  std::vector<std::string> names;  // the parameters, in order
  handler h;

  // Whether `path` matches; if so its parameters' values (in `names` order) are in `values`.
  bool match(std::string_view path, std::vector<std::string_view>& values) const {
    values.clear();
    std::size_t from = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (from > path.size()) return false;  // fewer segments than the pattern
      auto slash = path.find('/', from);
      auto end = slash == std::string_view::npos ? path.size() : slash;
      auto seg = path.substr(from, end - from);
      if (is_param[i]) {
        if (seg.empty()) return false;
        values.push_back(seg);
      } else if (seg != segments[i]) {
        return false;
      }
      from = slash == std::string_view::npos ? path.size() + 1 : slash + 1;
    }
    return from == path.size() + 1;  // no segment left over
  }
};

// "/orders/{id}/items/{sku}" as its segments. A parameter must be a whole segment.
route_entry compile(std::string method, std::string pattern, handler h) {
  static const std::regex param{R"(\{([A-Za-z_][A-Za-z0-9_]*)\})"};
  route_entry e{std::move(method), pattern, {}, {}, {}, std::move(h)};
  std::size_t from = 0;
  for (;;) {
    auto slash = pattern.find('/', from);
    std::string seg =
        pattern.substr(from, slash == std::string::npos ? std::string::npos : slash - from);
    std::smatch m;
    if (std::regex_match(seg, m, param)) {
      e.segments.push_back(m[1]);
      e.is_param.push_back(true);
      e.names.push_back(m[1]);
    } else {
      if (seg.find('{') != std::string::npos || seg.find('}') != std::string::npos)
        throw std::invalid_argument(
            "http::server::route: a {parameter} must be a whole path "
            "segment: " +
            pattern);
      e.segments.push_back(std::move(seg));
      e.is_param.push_back(false);
    }
    if (slash == std::string::npos) break;
    from = slash + 1;
  }
  return e;
}

// cpp-httplib's task queue, one task per connection: cpp-httplib runs a connection's whole
// keep-alive life (read, dispatch, write, wait for the next request) as one task. Its own
// ThreadPool has a fixed count of threads, so with more connections than threads the others
// wait until a keep-alive connection goes idle (up to its idle timeout: seconds). This pool
// starts a thread whenever a task arrives and none is idle, up to `max` threads (then tasks
// queue); threads stay for the next connection.
// Threads: enqueue() on the listener thread, shutdown() on the owner's; workers take tasks.
class connection_pool : public httplib::TaskQueue {
 public:
  explicit connection_pool(std::size_t max) : max_(std::max<std::size_t>(max, 1)) {}
  ~connection_pool() override = default;

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(fn));
    if (idle_ >= jobs_.size() || threads_.size() >= max_) {
      ready_.notify_one();
      return;
    }
    threads_.emplace_back([this] { work(); });
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();  // no enqueue() after shutdown(): the list is stable
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      ready_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  const std::size_t max_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;  // workers waiting for a task
  bool stopping_ = false;
};

struct timing {
  std::string_view route;
  std::chrono::steady_clock::time_point start{};
};
thread_local timing current;

void write(const response& r, httplib::Response& res) {
  res.status = r.status;
  for (const auto& [k, v] : r.headers) res.set_header(k, v);
  res.set_content(r.body, r.content_type);
}

request convert(const httplib::Request& req) {
  request r{req.method, req.path, {}, {}, {}, {}};
  for (const auto& [k, v] : req.headers) r.headers.emplace_back(k, v);
  for (const auto& [k, v] : req.params) r.query_params.emplace_back(k, v);
  return r;
}

}  // namespace

struct server::state {
  server_options options;
  std::vector<route_entry> routes;
  httplib::Server http;
  std::thread listener;
  std::atomic<bool> listen_returned{false};
  int port = 0;

  void dispatch(const httplib::Request& req, httplib::Response& res, std::string body = {}) {
    const std::string method = req.method == "HEAD" ? "GET" : req.method;
    std::string allowed;
    thread_local std::vector<std::string_view> values;
    for (const auto& route : routes) {
      if (!route.match(req.path, values)) continue;
      if (route.method != method) {
        allowed += (allowed.empty() ? "" : ", ") + route.method;
        continue;
      }
      current.route = route.pattern;
      request r = convert(req);
      r.body = std::move(body);
      for (std::size_t i = 0; i < route.names.size(); ++i)
        r.params.emplace_back(route.names[i], std::string(values[i]));
      try {
        write(route.h(r), res);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {}: {}", req.method, route.pattern, e.what());
        write(problem(500, "an unexpected error; the server's log has the details"), res);
      }
      return;
    }
    if (!allowed.empty()) {
      auto p = problem(
          405, fmt::format("{} {} is not allowed (allowed: {})", req.method, req.path, allowed));
      p.headers.emplace_back("Allow", allowed);
      write(p, res);
      return;
    }
    write(problem(404, fmt::format("no route for {} {}", req.method, req.path)), res);
  }

  void configure() {
    auto threads = options.threads;
    http.new_task_queue = [threads] { return new connection_pool(threads); };
    http.set_payload_max_length(options.max_body_bytes);
    http.set_read_timeout(options.read_timeout);
    http.set_write_timeout(options.write_timeout);
    http.set_keep_alive_timeout(options.keep_alive_timeout.count());
    // cpp-httplib writes the header and the body apart: without TCP_NODELAY, Nagle and the
    // peer's delayed ACK hold the body ~40 ms (measured: 280 requests/s on 8 connections).
    http.set_tcp_nodelay(true);
    http.set_keep_alive_max_count(1000);
    // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a second server on
    // the same port starts silently and the kernel splits the connections between the two.
    http.set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    auto to_dispatch = [this](const httplib::Request& req, httplib::Response& res) {
      dispatch(req, res);
    };
    // Requests that may have a body read it here: one without Content-Length or
    // Transfer-Encoding has none (RFC 9112 6.3; cpp-httplib 0.11 would wait for the peer to
    // close), and one over max_body_bytes is refused with 413 as it arrives.
    auto with_body = [this](const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& reader) {
      std::string body;
      if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
        if (req.is_multipart_form_data()) {
          res.set_header("Connection", "close");  // its body stays unread
          write(problem(415, "multipart bodies are not accepted; send application/json"), res);
          return;
        }
        bool read = reader([&body](const char* data, std::size_t n) {
          body.append(data, n);
          return true;
        });
        if (!read) {
          write(res.status == 413
                    ? problem(413, fmt::format("the request body is larger than {} bytes",
                                               options.max_body_bytes))
                    : problem(400, "the request body could not be read"),
                res);
          return;
        }
      }
      dispatch(req, res, std::move(body));
    };
    http.Get(".*", to_dispatch);
    http.Post(".*", with_body);
    http.Put(".*", with_body);
    http.Patch(".*", with_body);
    http.Delete(".*", with_body);
    http.Options(".*", to_dispatch);
    http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      current = timing{{}, std::chrono::steady_clock::now()};
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors cpp-httplib answers itself (413, a request it cannot parse) get a problem body.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&,
                                                                   httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string detail = res.status == 413 ? "the request body is larger than this server accepts"
                                             : "the request could not be read";
      write(problem(res.status, detail), res);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          write(problem(500, "an unexpected error; the server's log has the details"), res);
        });
    // Called after the response is written.
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      auto t = std::exchange(current, timing{});
      if (!options.on_request) return;
      double seconds =
          t.start == std::chrono::steady_clock::time_point{}
              ? 0.0
              : std::chrono::duration<double>(std::chrono::steady_clock::now() - t.start).count();
      try {
        options.on_request(t.route, req.method, res.status, seconds);
      } catch (const std::exception& e) {
        spdlog::warn("http: the request observer threw: {}", e.what());
      }
    });
  }
};

server::server(server_options options) : state_(std::make_unique<state>()) {
  state_->options = std::move(options);
}

server::~server() {
  stop();
}

void server::route(std::string method, std::string pattern, handler h) {
  state_->routes.push_back(compile(std::move(method), std::move(pattern), std::move(h)));
}

result<void> server::start() {
  auto& s = *state_;
  if (s.listener.joinable()) return make_error(errc::invalid_argument, "already started");
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-response is an error return, not a signal
  s.configure();
  const auto& o = s.options;
  if (o.port == 0) {
    s.port = s.http.bind_to_any_port(o.host);
  } else {
    s.port = s.http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (s.port <= 0)
    return make_error(errc::io, "cannot listen on {}:{} (in use, or not an address of this host)",
                      o.host, o.port);
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listen_returned = true;
  });
  // stop() is a no-op until the listener runs: wait for it, so that stop() always stops it.
  while (!s.http.is_running() && !s.listen_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  if (s.listen_returned) {
    s.listener.join();
    return make_error(errc::io, "cannot serve on {}:{}", o.host, s.port);
  }
  return success();
}

int server::port() const noexcept {
  return state_->port;
}

void server::stop() {
  auto& s = *state_;
  if (!s.listener.joinable()) return;
  s.http.stop();      // closes the listening socket: no new connection
  s.listener.join();  // the worker pool drains: requests in flight finish and are answered
}

}  // namespace jetsource::http
