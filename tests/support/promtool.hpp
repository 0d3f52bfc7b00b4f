// Test support: runs Prometheus' promtool (Debian package prometheus, see
// scripts/install-deps.sh) on text given as its standard input.
#pragma once

#include "nats_fixture.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace jetsource::test {

struct promtool_result {
  int status = -1;     ///< exit status; -1 when promtool could not run
  std::string output;  ///< its stdout and stderr
};

/// The promtool binary: $PROMTOOL, else /usr/bin/promtool.
inline std::filesystem::path promtool_path() {
  const char* env = std::getenv("PROMTOOL");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                        : std::filesystem::path("/usr/bin/promtool");
}

/// Runs `promtool <args...>` with `input` (if any) as its standard input.
inline promtool_result promtool(const std::vector<std::string>& args, const std::string& input) {
  const auto bin = promtool_path();
  if (!std::filesystem::exists(bin))
    return {-1, bin.string() +
                    " not found: scripts/install-deps.sh installs it (package "
                    "prometheus), or set PROMTOOL"};
  temp_dir dir;
  const auto in = dir.path() / "input";
  std::ofstream(in, std::ios::binary) << input;
  std::string command = "'" + bin.string() + "'";
  for (const auto& a : args) command += " '" + a + "'";
  command += " < '" + in.string() + "' 2>&1";
  promtool_result r;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace jetsource::test
