// The order-system command line: the shared context and the mapping of errors to exit codes.
#include "cli.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <system_error>
#include <thread>

namespace order_system::cli {

context::owner_lock::~owner_lock() {
  if (fd < 0) return;
  std::error_code ignored;
  if (!url_file.empty()) std::filesystem::remove(url_file, ignored);
  ::close(fd);  // releases the lock
}

jetsource::result<jetsource::runtime> context::open_runtime() {
  jetsource::connection_options o;
  o.name = "order-system";
  if (!globals_.nats_url.empty()) {
    o.urls = {globals_.nats_url};
    auto rt = jetsource::runtime::open(o, {});
    if (!rt)
      rt.error().message =
          fmt::format("cannot connect to {}: {}", globals_.nats_url, rt.error().message);
    return rt;
  }
  auto dir = globals_.data_dir / "nats";
  auto io_error = [&](std::string_view what) {
    return jetsource::make_error(jetsource::errc::io, "{} in {}: {}", what, dir.string(),
                                 std::strerror(errno));
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return jetsource::make_error(jetsource::errc::io, "cannot create {}: {}", dir.string(),
                                 ec.message());
  auto url_file = dir / "url";
  // One server per store. When another process owns it: connect to its server if it shares it
  // (a long-running subcommand), or wait until it is done (a short command), then own it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  std::optional<jetsource::error> shared_failed;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::open((dir / "owner.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return io_error("cannot open owner.lock");
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {  // ours: start the embedded server
      owner_.fd = fd;
      std::filesystem::remove(url_file, ec);  // left by an owner that died
      auto rt = jetsource::runtime::open(o, dir);
      if (!rt) {
        rt.error().message = fmt::format("cannot start the embedded nats-server in {}: {}",
                                         dir.string(), rt.error().message);
        return rt;
      }
      if (share_embedded_) {
        auto tmp = dir / "url.tmp";
        std::ofstream(tmp) << rt->server->url() << "\n";
        std::filesystem::rename(tmp, url_file, ec);
        if (!ec) owner_.url_file = url_file;
      }
      return rt;
    }
    int lock_errno = errno;
    ::close(fd);
    if (lock_errno != EWOULDBLOCK) return io_error("cannot lock owner.lock");
    std::string url;
    if (std::ifstream(url_file) >> url) {
      auto shared = o;
      shared.urls = {url};
      auto rt = jetsource::runtime::open(shared, {});
      if (rt) return rt;
      shared_failed = std::move(rt).error();
      shared_failed->message = fmt::format("its server {}: {}", url, shared_failed->message);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return jetsource::make_error(
      jetsource::errc::unreachable,
      "the embedded nats-server's store {} is still in use by another process after 30 s{}{} "
      "(pass --nats-url to share one server between processes)",
      dir.string(), shared_failed ? "; " : "",
      shared_failed ? jetsource::to_string(*shared_failed) : std::string{});
}

jetsource::result<jetsource::runtime*> context::runtime() {
  if (!runtime_) {
    JETSOURCE_TRY(rt, open_runtime());
    runtime_.emplace(std::move(rt));
  }
  return &*runtime_;
}

jetsource::result<jetsource::event_store*> context::store() {
  if (!store_) {
    JETSOURCE_TRY(rt, runtime());
    auto s = jetsource::event_store::open(rt->conn, orders_stream());
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

CLI::Validator subject_token(std::string what) {
  return CLI::Validator(
      [what](std::string& value) -> std::string {
        auto ok = jetsource::validate_token(what, value);
        return ok ? std::string{} : ok.error().message;
      },
      "TOKEN");
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
