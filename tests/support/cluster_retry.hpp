// Test support: a command executed on a cluster the way a caller must while leaders are being
// elected (an append can time out, or the server answers 10076 "not found", for seconds):
// retried with the same command id until it is accepted or rejected, so that it lands once.
#pragma once

#include <jetsource/repository.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace jetsource::test {

template <class A, class C>
result<executed> execute_retried(repository<A>& repo, const std::string& id, const C& command,
                                 command_context ctx,
                                 std::chrono::milliseconds patience = std::chrono::seconds{60}) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  auto done = repo.execute(id, command, ctx);
  while (!done && !done.error().rejection && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    repo.forget(id);
    done = repo.execute(id, command, ctx);
  }
  return done;
}

}  // namespace jetsource::test
