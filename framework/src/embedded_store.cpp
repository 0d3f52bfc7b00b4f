// detail: one embedded nats-server per store. The owner holds an flock on <dir>/owner.lock (its
// server inherits it, so the lock is free only once no server runs on the store) and writes the
// server's URL to <dir>/url; joiners connect to that URL and stand by to take the server over.
#include "embedded_store.hpp"

#include "log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>

namespace jetsource::detail {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto stand_by_poll = 50ms;  // how often a joiner checks whether the owner left
constexpr auto restart_backoff = 1s;  // after a take-over that failed or a server that died
constexpr auto join_retry = 20ms;     // while the owner is still starting its server

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The URL the store's last owner wrote, and its port (0 when there is none).
std::pair<std::string, std::uint16_t> published_url(const fs::path& dir) {
  std::string url;
  std::ifstream(dir / "url") >> url;
  auto colon = url.rfind(':');
  unsigned port = 0;
  if (colon != std::string::npos)
    std::from_chars(url.data() + colon + 1, url.data() + url.size(), port);
  if (port == 0 || port > 65535) return {};
  return {url, static_cast<std::uint16_t>(port)};
}

// Whether process `pid` is a nats-server with its store in `dir` (its command line has
// "-sd <dir>"): the URL file is trusted only for a server that is alive and serves this store.
bool serves_store(pid_t pid, const fs::path& dir) {
  std::string cmdline = slurp(fs::path("/proc") / std::to_string(pid) / "cmdline");
  std::string wanted = std::string("-sd") + '\0' + dir.string() + '\0';
  return cmdline.find(wanted) != std::string::npos;
}

// The URL of the server serving the store now: the URL file, confirmed by a live server's
// ports file (<binary>_<pid>.ports, written by nats-server itself) in the same directory.
std::optional<std::pair<std::string, std::uint16_t>> live_url(const fs::path& dir) {
  auto [url, port] = published_url(dir);
  if (port == 0) return std::nullopt;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    auto sep = name.rfind('_');
    if (entry.path().extension() != ".ports" || sep == std::string::npos) continue;
    pid_t pid = 0;
    std::from_chars(name.data() + sep + 1, name.data() + name.size(), pid);
    if (pid > 0 && slurp(entry.path()).find('"' + url + '"') != std::string::npos &&
        serves_store(pid, dir))
      return std::pair{url, port};
  }
  return std::nullopt;
}

// Starts the store's server on `port` (0: a free one), keeping `lock_fd` open in it, and
// publishes its URL (written aside, then renamed: readers see the old URL or the new one).
result<embedded_server> start_server(const fs::path& dir, int lock_fd, std::uint16_t port) {
  JETSOURCE_TRY(server,
                embedded_server::start({.data_dir = dir, .port = port, .inherited_fd = lock_fd}));
  std::error_code ec;
  auto tmp = dir / "url.tmp";
  std::ofstream(tmp) << server.url() << "\n";
  fs::rename(tmp, dir / "url", ec);
  if (ec) return make_error(errc::io, "cannot write {}: {}", (dir / "url").string(), ec.message());
  return server;
}

result<int> open_lock(const fs::path& dir) {
  int fd = ::open((dir / "owner.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::io, "cannot open {}: {}", (dir / "owner.lock").string(),
                      std::strerror(errno));
  return fd;
}

// The lock on the store, when nobody holds it; -1 when another process (or server) does.
result<int> try_lock(const fs::path& dir) {
  JETSOURCE_TRY(fd, open_lock(dir));
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
  int why = errno;
  ::close(fd);
  if (why == EWOULDBLOCK) return -1;
  return make_error(errc::io, "cannot lock {}: {}", (dir / "owner.lock").string(),
                    std::strerror(why));
}

// Owner: the port the store had last time if it is free (joiners of an owner that left
// reconnect to it), else any free port.
result<runtime> open_as_owner(connection_options options, const fs::path& dir, int lock_fd) {
  auto [old_url, old_port] = published_url(dir);
  auto server = start_server(dir, lock_fd, old_port);
  if (!server && old_port != 0) {
    log()->info("the store's previous port {} is taken ({}); starting on a free port", old_port,
                server.error());
    server = start_server(dir, lock_fd, 0);
  }
  if (!server) {
    ::close(lock_fd);
    return std::move(server).error();
  }
  auto membership = embedded_store_membership::owner(dir, lock_fd);
  options.urls = {server->url()};
  JETSOURCE_TRY(conn, connection::connect(options));
  return runtime{std::move(membership), std::move(server).value(), std::move(conn)};
}

}  // namespace

result<runtime> open_embedded_store(connection_options options, const fs::path& data_dir,
                                    std::chrono::milliseconds wait) {
  if (data_dir.empty())
    return make_error(errc::invalid_argument, "embedded server needs a data_dir");
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  auto dir = ec ? fs::path{} : fs::canonical(data_dir, ec);  // one spelling for "-sd <dir>"
  if (ec) return make_error(errc::io, "cannot create {}: {}", data_dir.string(), ec.message());
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::optional<error> join_failed;
  for (;;) {
    JETSOURCE_TRY(lock_fd, try_lock(dir));
    if (lock_fd >= 0) return open_as_owner(std::move(options), dir, lock_fd);
    if (auto found = live_url(dir)) {  // owned and served: join
      auto joined = options;
      joined.urls = {found->first};
      auto conn = connection::connect(joined);
      if (conn)
        return runtime{embedded_store_membership::joiner(dir, found->second), std::nullopt,
                       std::move(conn).value()};
      join_failed = std::move(conn).error();
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(join_retry);
  }
  return make_error(errc::unreachable,
                    "the embedded nats-server's store {} is owned by another process whose "
                    "server did not answer within {} ms{}{}",
                    dir.string(), wait.count(), join_failed ? ": " : "",
                    join_failed ? to_string(*join_failed) : std::string{});
}

// -- membership: the owner's lock, or a joiner's stand-by -----------------------------------

embedded_store_membership::embedded_store_membership(fs::path dir, int lock_fd, std::uint16_t port)
    : dir_(std::move(dir)), port_(port), lock_fd_(lock_fd) {}

std::shared_ptr<embedded_store_membership> embedded_store_membership::owner(fs::path dir,
                                                                            int lock_fd) {
  return std::shared_ptr<embedded_store_membership>(
      new embedded_store_membership(std::move(dir), lock_fd, 0));
}

std::shared_ptr<embedded_store_membership> embedded_store_membership::joiner(fs::path dir,
                                                                             std::uint16_t port) {
  std::shared_ptr<embedded_store_membership> m(
      new embedded_store_membership(std::move(dir), -1, port));
  m->stand_by_ = std::thread([raw = m.get()] { raw->stand_by(); });
  return m;
}

embedded_store_membership::~embedded_store_membership() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (stand_by_.joinable()) stand_by_.join();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // the owner's server (if any) was stopped before
}

bool embedded_store_membership::wait_stopping(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, d, [this] { return stopping_; });
}

// The joiner's thread: when the lock comes free (the server and its owner are gone), start the
// server again on the same port; stop it when the runtime goes away. The server is this
// thread's child, so it dies with this thread (PR_SET_PDEATHSIG): the thread outlives it.
void embedded_store_membership::stand_by() {
  auto pause = stand_by_poll;
  while (!wait_stopping(pause)) {
    pause = stand_by_poll;
    if (!taken_over_) {
      if (!try_take_over()) pause = restart_backoff;
    } else if (!taken_over_->running()) {
      log()->warn("the embedded nats-server this process took over (store {}) exited; see {}",
                  dir_.string(), (dir_ / "nats-server.log").string());
      taken_over_.reset();
      ::close(std::exchange(lock_fd_, -1));  // any process may start it again
      pause = restart_backoff;
    }
  }
  if (taken_over_) (void)taken_over_->stop();  // before the destructor releases the lock
  taken_over_.reset();
}

bool embedded_store_membership::try_take_over() {
  auto fd = try_lock(dir_);
  if (!fd) {
    log()->error("cannot take over the store {}: {}", dir_.string(), fd.error());
    return false;
  }
  if (*fd < 0) return true;  // still served
  log()->info("the process serving the store {} left; starting its server again on port {}",
              dir_.string(), port_);
  auto server = start_server(dir_, *fd, port_);  // the same port: joiners reconnect to it
  if (!server) {
    log()->error("cannot take over the store {}: {}", dir_.string(), server.error());
    ::close(*fd);
    return false;
  }
  taken_over_.emplace(std::move(server).value());
  lock_fd_ = *fd;
  return true;
}

}  // namespace jetsource::detail
