// One embedded nats-server per store: processes (jetsource-test-store-user) and runtimes that
// open one directory share the server the first one started, which outlives its starter while
// others use it; the last one out stops it.
#include <bank/account.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>

#include "nats_fixture.hpp"
#include "order_cli_fixture.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using jetsource::test::slurp;
using jetsource::test::temp_dir;
using namespace std::chrono_literals;

// The nats-server processes whose store is `dir` (their command line has "-sd <dir>").
std::vector<pid_t> servers_on(const fs::path& dir) {
  std::string wanted = std::string("-sd") + '\0' + fs::canonical(dir).string() + '\0';
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(wanted) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');  // "pid (comm) state ppid ..."
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// Nobody holds the store's lock: no process owns it and no server runs on it.
bool store_is_free(const fs::path& dir) {
  int fd = ::open((dir / "owner.lock").c_str(), O_RDWR | O_CLOEXEC);
  bool free = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (fd >= 0) ::close(fd);
  return free;
}

// One jetsource-test-store-user process, driven through its stdin and stdout.
class store_user {
 public:
  explicit store_user(const fs::path& dir) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_adddup2(&files, in[0], 0);
    posix_spawn_file_actions_adddup2(&files, out[1], 1);
    std::vector<std::string> args{TEST_STORE_USER_BIN, "--dir", dir.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &files, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&files);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~store_user() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
  }
  store_user(const store_user&) = delete;
  store_user& operator=(const store_user&) = delete;

  pid_t pid() const { return pid_; }

  // The next line it prints ("" after 60 s or at its end).
  std::string line() {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (buffer_.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{from_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char chunk[256];
      auto n = ::read(from_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    auto end = buffer_.find('\n');
    std::string l = buffer_.substr(0, end);
    buffer_.erase(0, end + 1);
    return l;
  }
  // Sends a command and returns its reply.
  std::string ask(const std::string& command) {
    std::string l = command + "\n";
    if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "";
    return line();
  }
  // Ends its input and waits for its exit code (-1: killed or still running after 60 s).
  int quit() {
    ::close(std::exchange(to_, -1));
    for (int i = 0; i < 6000; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  void kill_hard() {
    ::kill(pid_, SIGKILL);
    ::waitpid(std::exchange(pid_, -1), nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
};

// Waits up to 30 s for `done`.
template <class Pred>
bool eventually(Pred done) {
  for (int i = 0; i < 300; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

TEST(EmbeddedStoreTest, ProcessesOpeningOneStoreAtOnceShareOneServer) {
  temp_dir tmp;
  const auto dir = tmp.path() / "nats";
  constexpr int n = 4;
  std::vector<std::unique_ptr<store_user>> users;
  for (int i = 0; i < n; ++i) users.push_back(std::make_unique<store_user>(dir));
  std::vector<std::string> opened;
  for (auto& u : users) opened.push_back(u->line());
  auto owners = std::count_if(opened.begin(), opened.end(),
                              [](const std::string& l) { return l.starts_with("open owner "); });
  EXPECT_EQ(owners, 1) << ::testing::PrintToString(opened);
  const std::string url = opened[0].substr(opened[0].rfind(' ') + 1);
  for (const auto& l : opened) {
    ASSERT_TRUE(l.starts_with("open ")) << l;
    EXPECT_EQ(l.substr(l.rfind(' ') + 1), url) << ::testing::PrintToString(opened);
  }
  EXPECT_EQ(servers_on(dir).size(), 1u);

  // Every commit is visible to every process at once (one server, one store).
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(users[i]->ask("open acc-" + std::to_string(i)), "ok");
    EXPECT_EQ(users[i]->ask("deposit acc-" + std::to_string(i)), "ok");
  }
  for (auto& u : users)
    for (int i = 0; i < n; ++i)
      EXPECT_EQ(u->ask("version acc-" + std::to_string(i)),
                "version acc-" + std::to_string(i) + " 2");

  // The last one out stops the server and frees the store.
  for (auto& u : users) EXPECT_EQ(u->quit(), 0);
  EXPECT_TRUE(servers_on(dir).empty());
  EXPECT_TRUE(store_is_free(dir));
}

// The process that started the server leaves (cleanly, or killed): its server keeps serving
// the others, unchanged; the last one out stops it.
void owner_leaves(bool killed) {
  temp_dir tmp;
  const auto dir = tmp.path() / "nats";
  store_user owner(dir);
  const std::string opened = owner.line();
  ASSERT_TRUE(opened.starts_with("open owner ")) << opened;
  const std::string url = opened.substr(opened.rfind(' ') + 1);
  store_user a(dir), b(dir);
  ASSERT_EQ(a.line(), "open joiner " + url);
  ASSERT_EQ(b.line(), "open joiner " + url);
  ASSERT_EQ(owner.ask("open acc-1"), "ok");
  const auto started = servers_on(dir);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(parent_of(started[0]), owner.pid());

  if (killed)
    owner.kill_hard();
  else
    EXPECT_EQ(owner.quit(), 0);
  EXPECT_EQ(a.ask("deposit acc-1"), "ok");
  EXPECT_EQ(b.ask("deposit acc-1"), "ok");
  EXPECT_EQ(a.ask("version acc-1"), "version acc-1 3");
  EXPECT_EQ(servers_on(dir), started);  // the same server, never restarted

  EXPECT_EQ(a.quit(), 0);  // not the last one out
  EXPECT_EQ(servers_on(dir), started);
  EXPECT_EQ(b.ask("deposit acc-1"), "ok");
  EXPECT_EQ(b.ask("version acc-1"), "version acc-1 4");
  EXPECT_EQ(b.quit(), 0);  // the last one out
  EXPECT_TRUE(servers_on(dir).empty());
  EXPECT_TRUE(store_is_free(dir));
}

TEST(EmbeddedStoreTest, TheServerOutlivesTheProcessThatStartedItWhileOthersUseIt) {
  owner_leaves(false);
}

TEST(EmbeddedStoreTest, TheServerOutlivesAKilledStarterWhileOthersUseIt) {
  owner_leaves(true);
}

TEST(EmbeddedStoreTest, AServerWhoseUsersWereAllKilledIsJoinedAndStoppedByTheNextUser) {
  temp_dir tmp;
  const auto dir = tmp.path() / "nats";
  const auto started = [&] {
    store_user owner(dir), other(dir);
    EXPECT_TRUE(owner.line().starts_with("open "));
    EXPECT_TRUE(other.line().starts_with("open "));
    EXPECT_EQ(owner.ask("open acc-1"), "ok");
    owner.kill_hard();
    other.kill_hard();
    return servers_on(dir);
  }();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_FALSE(store_is_free(dir));  // still served: no second server can start on it
  EXPECT_EQ(servers_on(dir), started);

  store_user next(dir);
  EXPECT_TRUE(next.line().starts_with("open joiner ")) << "it joins the orphaned server";
  EXPECT_EQ(next.ask("version acc-1"), "version acc-1 1");
  EXPECT_EQ(next.quit(), 0);
  EXPECT_TRUE(servers_on(dir).empty());
  EXPECT_TRUE(store_is_free(dir));
}

TEST(EmbeddedStoreTest, TwoRuntimesInOneProcessShareOneServer) {
  temp_dir tmp;
  const auto dir = tmp.path() / "nats";
  auto first = jetsource::runtime::open({}, dir);
  ASSERT_TRUE(first) << first.error();
  auto second = jetsource::runtime::open({}, dir);
  ASSERT_TRUE(second) << second.error();
  ASSERT_TRUE(first->server.has_value());
  EXPECT_FALSE(second->server.has_value());
  EXPECT_EQ(second->conn.connected_url(), first->server->url());
  const auto started = servers_on(dir);
  EXPECT_EQ(started.size(), 1u);

  first = jetsource::make_error(jetsource::errc::internal, "closed");  // the starter leaves
  EXPECT_EQ(servers_on(dir), started);
  auto store = jetsource::event_store::open(second->conn, {.stream = "SHARED"});
  ASSERT_TRUE(store) << store.error();
  jetsource::repository<bank::account> accounts{*store};
  auto r = accounts.execute("acc-1", bank::open_account{"test", 5});
  ASSERT_TRUE(r) << r.error();
  second = jetsource::make_error(jetsource::errc::internal, "closed");  // the last one out
  EXPECT_TRUE(servers_on(dir).empty());
  EXPECT_TRUE(store_is_free(dir));
}

// The order-system sample on the library's logic: `serve` joins a server another process
// started, keeps serving after that process exits, and is the last one out.
class EmbeddedStoreCliTest : public jetsource::test::order_cli_test {};

TEST_F(EmbeddedStoreCliTest, ServeKeepsServingAfterTheProcessThatStartedTheServerExits) {
  const auto dir = cli_dir() / "nats";
  store_user starter(dir);
  ASSERT_TRUE(starter.line().starts_with("open owner ")) << "it starts the store's server";
  const auto started = servers_on(dir);
  ASSERT_EQ(started.size(), 1u);

  pid_t serve = spawn({"serve"}, "");  // no --nats-url: joins the running server
  bool serving =
      eventually([&] { return slurp(files_[serve].second).find("serving") != std::string::npos; });
  ASSERT_TRUE(serving) << slurp(files_[serve].second);
  EXPECT_EQ(starter.quit(), 0);
  EXPECT_EQ(servers_on(dir), started);  // still serving serve

  auto created = wait(spawn({"order", "create", "--customer", "c-1", "--order-id", "o-1"}, ""));
  ASSERT_EQ(created.code, 0) << created.err;
  EXPECT_EQ(servers_on(dir), started);  // the command joined it too
  bool applied = eventually([&] {
    auto q = wait(spawn({"query", "order", "o-1", "--json"}, ""));
    return q.code == 0 && jetsource::test::json_of(q.out)["order_id"] == "o-1";
  });
  EXPECT_TRUE(applied) << "serve applies commits through the server it joined";

  stop(serve);  // the last one out
  EXPECT_TRUE(servers_on(dir).empty());
  EXPECT_TRUE(store_is_free(dir));
}

}  // namespace
