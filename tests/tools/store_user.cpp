// A process using an embedded store, for the shared-server tests: opens runtime::open({}, DIR),
// then runs commands read from stdin, one reply line each on stdout.
//   jetsource-test-store-user --dir DIR
//   first line out: "open owner|joiner <url>" (or "error <why>", exit 1)
//   in: "open ID" | "deposit ID" -> "ok" | "error <why>";  "version ID" -> "version ID <n>"
//   "quit" or end of input: close the runtime, exit 0
#include <bank/account.hpp>
#include <jetsource/repository.hpp>
#include <jetsource/runtime.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

namespace {

void reply(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

std::string run(jetsource::event_store& store, const std::string& verb, const std::string& id) {
  jetsource::repository<bank::account> accounts{store};  // no cache kept between commands
  if (verb == "version") {
    auto l = accounts.load(id);
    return l ? fmt::format("version {} {}", id, l->version) : fmt::format("error {}", l.error());
  }
  auto r = verb == "open" ? accounts.execute(id, bank::open_account{"test", 0})
                          : accounts.execute(id, bank::deposit{1, "test"});
  return r ? std::string("ok") : fmt::format("error {}", r.error());
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  CLI::App app{"a process on an embedded store (test tool)"};
  app.add_option("--dir", dir)->required();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  auto rt = jetsource::runtime::open({}, dir);
  if (!rt) {
    reply(fmt::format("error {}", rt.error()));
    return 1;
  }
  reply(fmt::format("open {} {}", rt->server ? "owner" : "joiner", rt->conn.connected_url()));
  auto store =
      jetsource::event_store::open(rt->conn, {.stream = "SHARED", .subject_prefix = "shared"});
  for (std::string line; std::getline(std::cin, line) && line != "quit";) {
    std::istringstream words(line);
    std::string verb, id;
    words >> verb >> id;
    if (!store)
      reply(fmt::format("error {}", store.error()));
    else if (verb == "open" || verb == "deposit" || verb == "version")
      reply(run(*store, verb, id));
    else
      reply("error unknown command: " + line);
  }
  return 0;
}
