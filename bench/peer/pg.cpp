// jetsource-bench peer-postgres: the throwaway PostgreSQL server and libpq helpers (pg.hpp).
#include "pg.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace bench::pg {

namespace fs = std::filesystem;

namespace {

// The directory holding initdb and postgres: $JETSOURCE_PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout).
fs::path bin_dir() {
  if (const char* env = std::getenv("JETSOURCE_PG_BIN"); env && *env) {
    if (!fs::exists(fs::path(env) / "initdb") || !fs::exists(fs::path(env) / "postgres"))
      throw failure(fmt::format("JETSOURCE_PG_BIN={}: no initdb and postgres there", env));
    return env;
  }
  fs::path best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int v = std::atoi(d.path().filename().c_str());
    if (v > best_version && fs::exists(d.path() / "bin" / "postgres")) {
      best_version = v;
      best = d.path() / "bin";
    }
  }
  if (best.empty())
    throw failure(
        "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/postgres): run "
        "scripts/install-deps.sh bench, or set JETSOURCE_PG_BIN");
  return best;
}

std::string tail_of(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  if (port == 0) throw failure("no free loopback port");
  return port;
}

// Who runs PostgreSQL: ourselves, or (as root) `postgres`, else `nobody`.
struct run_as {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};
run_as pick_user() {
  run_as r;
  if (::geteuid() != 0) return r;
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* pw = ::getpwnam(name)) {
      r = {true, pw->pw_uid, pw->pw_gid};
      note("peer-postgres: running PostgreSQL as user {} (we are root)", name);
      return r;
    }
  }
  throw failure("running as root and neither user postgres nor nobody exists");
}

// Forks and execs `args` as `who`, output to `log`; its PID. Only async-signal-safe calls in the
// child until exec.
pid_t spawn(std::vector<std::string> args, const run_as& who, const fs::path& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) throw failure(fmt::format("cannot open {}", log.string()));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    throw failure("fork failed");
  }
  if (pid == 0) {
    if (who.drop &&
        (::setgroups(0, nullptr) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0))
      ::_exit(126);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // after setuid, which clears it: never outlive us
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);  // Ctrl-C goes to the benchmark, which stops the server
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  return pid;
}

// Waits up to `ms` for `pid` to exit; its wait status, or -1 if it is still running.
int reap(pid_t pid, int ms) {
  for (int waited = 0;; waited += 10) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return 0;  // not our child any more
    if (waited >= ms) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

server::server() {
  const fs::path bin = bin_dir();
  std::string pattern = (fs::temp_directory_path() / "jetsource-pg-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw failure("cannot create a temporary directory");
  dir_ = pattern;
  try {
    const run_as who = pick_user();
    if (who.drop && ::chown(dir_.c_str(), who.uid, who.gid) != 0)
      throw failure(fmt::format("cannot chown {}", dir_.string()));
    const fs::path data = dir_ / "data", log = dir_ / "postgres.log";
    pid_t initdb = spawn({(bin / "initdb").string(), "-D", data.string(), "-U", "bench",
                          "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                         who, log);
    int st = reap(initdb, 120'000);
    if (st != 0)
      throw failure(fmt::format("initdb failed ({} {}); its output:\n{}",
                                WIFEXITED(st) ? "exit code" : "signal",
                                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tail_of(log)));
    port_ = free_port();
    // Defaults of initdb's configuration otherwise (shared_buffers 128MB, fsync on, WAL sync
    // per commit unless a session sets synchronous_commit=off).
    pid_ = spawn({(bin / "postgres").string(), "-D", data.string(), "-p", std::to_string(port_),
                  "-k", dir_.string(), "-c", "listen_addresses=127.0.0.1"},
                 who, log);
    for (int waited = 0;; waited += 20) {
      if (int s = reap(pid_, 0); s != -1) {
        pid_ = -1;
        throw failure(fmt::format("postgres exited during start-up; its log:\n{}", tail_of(log)));
      }
      if (PQping(conninfo().c_str()) == PQPING_OK) break;
      if (waited > 60'000)
        throw failure(fmt::format("postgres not ready in 60 s; its log:\n{}", tail_of(log)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    conn c(conninfo());
    version_ = PQparameterStatus(c.get(), "server_version");  // "15.18 (Debian ...)"
    version_ = version_.substr(0, version_.find(' '));
    note("peer-postgres: PostgreSQL {} pid {} on 127.0.0.1:{}, data {}", version_, pid_, port_,
         data.string());
  } catch (...) {
    stop();
    throw;
  }
}

server::~server() {
  stop();
}

void server::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGINT);  // fast shutdown
    if (reap(pid_, 30'000) == -1) {
      note("peer-postgres: postgres pid {} still running after 30 s; killing it", pid_);
      ::kill(pid_, SIGKILL);
      reap(pid_, 5'000);
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec) note("peer-postgres: cannot remove {}: {}", dir_.string(), ec.message());
    dir_.clear();
  }
}

std::string server::conninfo() const {
  return fmt::format(
      "host=127.0.0.1 port={} user=bench dbname=postgres connect_timeout=10 "
      "options='-c client_min_messages=warning'",
      port_);
}

conn::conn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string why = PQerrorMessage(c_);
    PQfinish(c_);
    c_ = nullptr;
    throw failure(fmt::format("connect to PostgreSQL: {}", why));
  }
}

void check(const result& r, PGconn* c, std::string_view what) {
  auto s = PQresultStatus(r.get());
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
    throw failure(fmt::format("{}: {}", what, PQerrorMessage(c)));
}

void conn::exec(const std::string& sql) {
  result r(PQexec(c_, sql.c_str()));
  check(r, c_, sql.substr(0, 60));
}

result conn::query(const std::string& sql) {
  result r(PQexec(c_, sql.c_str()));
  check(r, c_, sql.substr(0, 60));
  return r;
}

void conn::prepare(const char* name, const char* sql, int params) {
  result r(PQprepare(c_, name, sql, params, nullptr));
  check(r, c_, fmt::format("prepare {}", name));
}

result conn::run(const char* name, const std::vector<const char*>& params) {
  result r(PQexecPrepared(c_, name, static_cast<int>(params.size()), params.data(), nullptr,
                          nullptr, 0));
  check(r, c_, name);
  return r;
}

void conn::copy_in(const std::string& target, const std::string& text) {
  result start(PQexec(c_, fmt::format("COPY {} FROM STDIN", target).c_str()));
  if (PQresultStatus(start.get()) != PGRES_COPY_IN)
    throw failure(fmt::format("COPY {}: {}", target, PQerrorMessage(c_)));
  if (PQputCopyData(c_, text.data(), static_cast<int>(text.size())) != 1 ||
      PQputCopyEnd(c_, nullptr) != 1)
    throw failure(fmt::format("COPY {}: {}", target, PQerrorMessage(c_)));
  result end(PQgetResult(c_));
  check(end, c_, "COPY");
  while (PGresult* more = PQgetResult(c_)) PQclear(more);
}

void copy_field(std::string& out, std::string_view value) {
  for (char ch : value) {
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += ch;
    }
  }
}

}  // namespace bench::pg
