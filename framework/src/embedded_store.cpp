// detail: one embedded nats-server per store. The server holds an flock on <dir>/owner.lock
// (inherited from the process that started it: the lock is free exactly when no server runs on
// the store) and its URL is in <dir>/url; every runtime using it holds a shared flock on
// <dir>/users.lock, and the last one out stops it.
#include "embedded_store.hpp"

#include "log.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

namespace jetsource::detail {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto retry = 20ms;         // while a server starts, or the last user stops it
constexpr auto stop_grace = 5000ms;  // SIGTERM, then SIGKILL

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Whether process `pid` is a nats-server with its store in `dir` (its command line has
// "-sd <dir>"): the URL file is trusted only for a server that is alive and serves this store.
bool serves_store(pid_t pid, const fs::path& dir) {
  std::string cmdline = slurp(fs::path("/proc") / std::to_string(pid) / "cmdline");
  std::string wanted = std::string("-sd") + '\0' + dir.string() + '\0';
  return cmdline.find(wanted) != std::string::npos;
}

struct live_server {
  std::string url;
  pid_t pid = -1;
};

// The server running on the store now: the URL in <dir>/url, confirmed by the ports file
// (<binary>_<pid>.ports, written by nats-server itself) of a live server on this store.
std::optional<live_server> find_server(const fs::path& dir) {
  std::string url;
  std::ifstream(dir / "url") >> url;
  if (url.empty()) return std::nullopt;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    auto sep = name.rfind('_');
    if (entry.path().extension() != ".ports" || sep == std::string::npos) continue;
    pid_t pid = 0;
    std::from_chars(name.data() + sep + 1, name.data() + name.size(), pid);
    if (pid > 0 && slurp(entry.path()).find('"' + url + '"') != std::string::npos &&
        serves_store(pid, dir))
      return live_server{url, pid};
  }
  return std::nullopt;
}

result<int> open_file(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::io, "cannot open {}: {}", file.string(), std::strerror(errno));
  return fd;
}

// flock(fd, how | LOCK_NB): true when taken, false when another holds it.
result<bool> try_flock(int fd, int how, const fs::path& file) {
  if (::flock(fd, how | LOCK_NB) == 0) return true;
  if (errno == EWOULDBLOCK) return false;
  return make_error(errc::io, "cannot lock {}: {}", file.string(), std::strerror(errno));
}

// The store's server lock when no server runs on the store (-1 when one does).
result<int> try_owner_lock(const fs::path& dir) {
  JETSOURCE_TRY(fd, open_file(dir / "owner.lock"));
  auto taken = try_flock(fd, LOCK_EX, dir / "owner.lock");
  if (taken && *taken) return fd;
  ::close(fd);
  if (!taken) return std::move(taken).error();
  return -1;
}

// Starts the store's server, which keeps `lock_fd` (and so the lock) for as long as it runs
// and outlives this process while others use it; publishes its URL (written aside, then
// renamed: a reader sees a whole URL).
result<runtime> open_as_owner(connection_options options, const fs::path& dir, int lock_fd,
                              std::shared_ptr<embedded_store_membership> membership) {
  auto server =
      embedded_server::start({.data_dir = dir, .inherited_fd = lock_fd, .die_with_parent = false});
  ::close(lock_fd);  // the server holds it now
  if (!server) return std::move(server).error();
  std::error_code ec;
  std::ofstream(dir / "url.tmp") << server->url() << "\n";
  fs::rename(dir / "url.tmp", dir / "url", ec);
  if (ec) return make_error(errc::io, "cannot write {}: {}", (dir / "url").string(), ec.message());
  options.urls = {server->url()};
  JETSOURCE_TRY(conn, connection::connect(options));
  return runtime{std::move(membership), std::move(server).value(), std::move(conn)};
}

// Stops a server this process did not start (or detached): SIGTERM, then SIGKILL; it is gone
// when the store's lock is free.
void stop_server(pid_t pid, const fs::path& dir) {
  for (int sig : {SIGTERM, SIGKILL}) {
    ::kill(pid, sig);
    auto deadline = std::chrono::steady_clock::now() + stop_grace;
    while (std::chrono::steady_clock::now() < deadline) {
      ::waitpid(pid, nullptr, WNOHANG);  // reaps it if it is our child; else ECHILD
      if (auto fd = try_owner_lock(dir); fd && *fd >= 0) {
        ::close(*fd);
        return;
      }
      std::this_thread::sleep_for(retry);
    }
    if (sig == SIGTERM)
      log()->warn("nats-server pid {} ignored SIGTERM for {} ms; killing it", pid,
                  stop_grace.count());
  }
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
  JETSOURCE_TRY(membership, embedded_store_membership::enter(dir, deadline));
  std::optional<error> join_failed;
  for (;;) {
    JETSOURCE_TRY(lock_fd, try_owner_lock(dir));
    if (lock_fd >= 0) return open_as_owner(std::move(options), dir, lock_fd, membership);
    if (auto found = find_server(dir)) {  // served: join
      auto joined = options;
      joined.urls = {found->url};
      auto conn = connection::connect(joined);
      if (conn) return runtime{membership, std::nullopt, std::move(conn).value()};
      join_failed = std::move(conn).error();
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(retry);
  }
  return make_error(errc::unreachable,
                    "the embedded nats-server of the store {} did not answer within {} ms{}{}",
                    dir.string(), wait.count(), join_failed ? ": " : "",
                    join_failed ? to_string(*join_failed) : std::string{});
}

// -- membership: the shared lock of the store's users ---------------------------------------

result<std::shared_ptr<embedded_store_membership>> embedded_store_membership::enter(
    fs::path dir, std::chrono::steady_clock::time_point deadline) {
  auto file = dir / "users.lock";
  JETSOURCE_TRY(fd, open_file(file));
  std::shared_ptr<embedded_store_membership> m(new embedded_store_membership(std::move(dir), fd));
  for (;;) {  // an exclusive holder is the last user of a server that is stopping
    JETSOURCE_TRY(taken, try_flock(fd, LOCK_SH, file));
    if (taken) return m;
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(errc::unreachable,
                        "the embedded nats-server of the store {} is still "
                        "being stopped by its last user",
                        m->dir_.string());
    std::this_thread::sleep_for(retry);
  }
}

void embedded_store_membership::leave(std::optional<embedded_server>& own) {
  // Shared -> exclusive is not atomic (flock(2)): a user arriving meanwhile keeps it shared.
  auto last = try_flock(users_fd_, LOCK_EX, dir_ / "users.lock");
  if (last && *last) {
    if (own && own->pid() > 0) return;  // stopped by its handle once the connection is closed
    if (auto found = find_server(dir_)) stop_pid_ = found->pid;
    return;
  }
  ::flock(users_fd_, LOCK_UN);
  if (own) own->detach();  // it keeps serving the others; the last of them stops it
}

embedded_store_membership::~embedded_store_membership() {
  if (stop_pid_ > 0) stop_server(stop_pid_, dir_);
  ::close(users_fd_);
}

}  // namespace jetsource::detail
