// jetsource::embedded_server: nats-server -js as a child process, found, started, awaited and
// stopped by PID.
#include <jetsource/server.hpp>

#include "log.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace jetsource {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

result<std::string> find_binary(const std::string& configured) {
  auto executable = [](const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; };
  if (!configured.empty()) {
    if (configured.find('/') != std::string::npos) {
      if (executable(configured)) return configured;
      return make_error(errc::server_binary, "nats-server binary '{}' is missing or not executable",
                        configured);
    }
  }
  std::string name = configured.empty() ? "nats-server" : configured;
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string d; std::getline(ss, d, ':');) dirs.push_back(d);
  }
  dirs.insert(dirs.end(), {"/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"});
  for (const auto& d : dirs)
    if (!d.empty() && executable(fs::path(d) / name)) return (fs::path(d) / name).string();
  return make_error(errc::server_binary,
                    "'{}' not found in PATH or /usr/sbin (install Debian's nats-server package, "
                    "e.g. scripts/install-deps.sh, or configure a server URL)",
                    name);
}

std::string tail_of(const fs::path& file, std::size_t max_bytes = 1500) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

// The ports file nats-server writes once it accepts clients: {"nats":["nats://127.0.0.1:N"],...}
// ("tls://127.0.0.1:N" when a config file makes TLS required).
std::uint16_t port_from_ports_file(const fs::path& file) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto url = text.find("nats://");
  if (url == std::string::npos) url = text.find("tls://");
  if (url == std::string::npos) return 0;
  auto colon = text.find(':', url + 6);
  auto end = text.find('"', url);
  if (colon == std::string::npos || end == std::string::npos || colon > end) return 0;
  unsigned port = 0;
  std::from_chars(text.data() + colon + 1, text.data() + end, port);
  return port <= 65535 ? static_cast<std::uint16_t>(port) : 0;
}

bool reap(pid_t pid, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  do {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// The store directory, created if missing, as an absolute path.
result<fs::path> data_dir_of(const fs::path& configured) {
  if (configured.empty())
    return make_error(errc::invalid_argument, "embedded server needs a data_dir");
  std::error_code ec;
  fs::create_directories(configured, ec);
  if (ec) return make_error(errc::io, "cannot create {}: {}", configured.string(), ec.message());
  return fs::absolute(configured);
}

std::vector<std::string> server_args(const std::string& binary,
                                     const embedded_server_options& options) {
  std::vector<std::string> args = {binary,
                                   "-js",
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   options.port == 0 ? "-1" : std::to_string(options.port),
                                   "-sd",
                                   options.data_dir.string(),
                                   "--ports_file_dir",
                                   options.data_dir.string()};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  return args;
}

// In the forked child: only async-signal-safe calls until exec.
[[noreturn]] void exec_server(char* const* argv, int out, pid_t parent,
                              const embedded_server_options& options) {
  if (options.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the process that started us
    if (::getppid() != parent) ::_exit(127);
  }
  ::setpgid(0, 0);  // terminal signals (Ctrl-C) go to the application, which stops us
  ::dup2(out, STDOUT_FILENO);
  ::dup2(out, STDERR_FILENO);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
  int keep = options.inherited_fd;
  if (keep == 3)
    ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep FD_CLOEXEC
  else if (keep >= 0)
    ::dup2(keep, 3);  // the copy is not close-on-exec
  ::close_range(keep >= 0 ? 4 : 3, ~0U, 0);
  ::execv(argv[0], argv);
  ::_exit(127);
}

// Forks and execs nats-server with its output going to `log_file` (or nowhere); its PID.
result<pid_t> spawn(std::vector<std::string> args, const embedded_server_options& options,
                    const fs::path& log_file) {
  std::vector<char*> argv;  // built before fork: the child must not allocate
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out = ::open(options.log_to_file ? log_file.c_str() : "/dev/null",
                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0)
    return make_error(errc::io, "cannot open {}: {}", log_file.string(), std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return make_error(errc::io, "fork failed: {}", std::strerror(errno));
  }
  if (pid == 0) exec_server(argv.data(), out, parent, options);
  ::close(out);
  return pid;
}

}  // namespace

result<embedded_server> embedded_server::start(embedded_server_options options) {
  JETSOURCE_TRY(binary, find_binary(options.binary));
  JETSOURCE_TRY(data_dir, data_dir_of(options.data_dir));
  options.data_dir = std::move(data_dir);
  fs::path log_file = options.data_dir / "nats-server.log";
  JETSOURCE_TRY(pid, spawn(server_args(binary, options), options, log_file));

  // Ready once it writes its ports file; an exit before that is a failed start.
  embedded_server server;
  server.options_ = std::move(options);
  server.pid_ = pid;
  fs::path ports = server.options_.data_dir /
                   fmt::format("{}_{}.ports", fs::path(binary).filename().string(), pid);
  auto deadline = std::chrono::steady_clock::now() + server.options_.start_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server.pid_ = -1;
      return make_error(
          errc::server_binary, "nats-server exited during start-up ({} {}); its log:\n{}",
          WIFEXITED(status) ? "exit code" : "signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail_of(log_file));
    }
    if (auto port = port_from_ports_file(ports); port != 0) {
      server.port_ = port;
      detail::log()->info("embedded nats-server pid {} on {} (store {})", pid, server.url(),
                          server.options_.data_dir.string());
      return server;
    }
    std::this_thread::sleep_for(10ms);
  }
  server.kill_hard();
  return make_error(errc::server_binary,
                    "nats-server did not become ready within {} ms; its log:\n{}",
                    server.options_.start_timeout.count(), tail_of(log_file));
}

embedded_server::embedded_server(embedded_server&& other) noexcept
    : options_(std::move(other.options_)),
      pid_(std::exchange(other.pid_, -1)),
      port_(other.port_) {}

embedded_server& embedded_server::operator=(embedded_server&& other) noexcept {
  if (this != &other) {
    (void)stop();
    options_ = std::move(other.options_);
    pid_ = std::exchange(other.pid_, -1);
    port_ = other.port_;
  }
  return *this;
}

embedded_server::~embedded_server() {
  (void)stop();
}

std::string embedded_server::url() const {
  return fmt::format("nats://127.0.0.1:{}", port_);
}

result<void> embedded_server::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return success();
  pid_t pid = std::exchange(pid_, -1);
  ::kill(pid, SIGTERM);
  if (!reap(pid, grace)) {
    detail::log()->warn("nats-server pid {} ignored SIGTERM for {} ms; killing it", pid,
                        grace.count());
    ::kill(pid, SIGKILL);
    reap(pid, std::chrono::milliseconds{5000});
  }
  return success();
}

void embedded_server::kill_hard() {
  if (pid_ <= 0) return;
  pid_t pid = std::exchange(pid_, -1);
  ::kill(pid, SIGKILL);
  reap(pid, std::chrono::milliseconds{5000});
}

bool embedded_server::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

}  // namespace jetsource
