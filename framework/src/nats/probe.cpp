// detail: a plain TCP probe of a server URL (see probe.hpp).
#include "nats/probe.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>

namespace jetsource::detail {
namespace {

using steady = std::chrono::steady_clock;

struct host_port {
  std::string host, port;
};

// nats://user:pass@host:port, tls://host, [::1]:4222, host ... -> host and port (4222 by default).
std::optional<host_port> parse(std::string url) {
  if (auto scheme = url.find("://"); scheme != std::string::npos) url.erase(0, scheme + 3);
  if (auto at = url.rfind('@'); at != std::string::npos) url.erase(0, at + 1);
  if (auto slash = url.find('/'); slash != std::string::npos) url.erase(slash);
  host_port hp{url, "4222"};
  if (url.starts_with('[')) {  // [v6]:port
    auto close = url.find(']');
    if (close == std::string::npos) return std::nullopt;
    hp.host = url.substr(1, close - 1);
    if (close + 1 < url.size() && url[close + 1] == ':') hp.port = url.substr(close + 2);
  } else if (auto colon = url.rfind(':'); colon != std::string::npos) {
    hp.host = url.substr(0, colon);
    hp.port = url.substr(colon + 1);
  }
  if (hp.host.empty() || hp.port.empty()) return std::nullopt;
  return hp;
}

int remaining_ms(steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A connected socket to host:port, or -1 (nothing listens, or not before the deadline).
int connect_to(const host_port& hp, steady::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found) != 0) return -1;
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
  for (auto* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t len = sizeof error;
    if (errno == EINPROGRESS && ::poll(&p, 1, remaining_ms(deadline)) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0)
      return fd;
    ::close(fd);
  }
  return -1;
}

// The first bytes as one printable line, at most 60 characters.
std::string printable(const std::string& bytes) {
  std::string out;
  for (char c : bytes) {
    if (c == '\r' || c == '\n') break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (out.size() >= 60) return out + "...";
  }
  return out;
}

}  // namespace

std::optional<std::string> not_a_nats_server(const std::string& url,
                                             std::chrono::milliseconds timeout,
                                             std::chrono::milliseconds waited) {
  auto hp = parse(url);
  if (!hp) return std::nullopt;
  auto deadline = steady::now() + timeout;
  int fd = connect_to(*hp, deadline);
  if (fd < 0) return std::nullopt;
  std::string got;
  bool closed = false;
  while (got.size() < 256 && !closed) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) != 1) break;
    char buf[256];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0)
      closed = true;
    else
      got.append(buf, static_cast<std::size_t>(n));
    if (got.find('\n') != std::string::npos) break;
  }
  ::close(fd);
  if (got.starts_with("INFO")) return std::nullopt;  // a NATS server after all
  std::string what = !got.empty() ? fmt::format("it sent \"{}\"", printable(got))
                     : closed     ? std::string("it closed the connection without a word")
                              : fmt::format("it accepted the connection but sent nothing in {} ms",
                                            (waited + timeout).count());
  return fmt::format("no NATS server at {} (it did not send the NATS INFO line; {})", url, what);
}

namespace {

// The server's first line (its INFO), up to 16 KiB, or "" when none came before the deadline.
std::string first_line(const host_port& hp, std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  int fd = connect_to(hp, deadline);
  if (fd < 0) return {};
  std::string got;
  while (got.size() < 16384 && got.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) != 1) break;
    char buf[1024];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto nl = got.find('\n');
  return nl == std::string::npos ? std::string{} : got.substr(0, nl);
}

}  // namespace

std::vector<server_identity> server_identities(const std::vector<std::string>& urls,
                                               std::chrono::milliseconds timeout) {
  std::vector<server_identity> out;
  std::vector<std::string> to_probe = urls;
  std::vector<std::string> seen;  // host:port
  for (std::size_t i = 0; i < to_probe.size() && i < 32; ++i) {
    auto hp = parse(to_probe[i]);
    if (!hp) continue;
    auto key = hp->host + ":" + hp->port;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    auto line = first_line(*hp, timeout);
    if (!line.starts_with("INFO ")) continue;
    auto info = nlohmann::json::parse(line.substr(5), nullptr, false);
    if (!info.is_object()) continue;
    out.push_back({to_probe[i], info.value("server_name", ""), info.value("version", "")});
    if (info.contains("connect_urls") && info["connect_urls"].is_array())
      for (const auto& u : info["connect_urls"])
        if (u.is_string()) to_probe.push_back(u.get<std::string>());
  }
  return out;
}

bool version_at_least(std::string_view version, int major, int minor, int patch) {
  int parts[3] = {0, 0, 0};
  const char* p = version.data();
  const char* end = version.data() + version.size();
  for (int k = 0; k < 3; ++k) {
    auto [next, ec] = std::from_chars(p, end, parts[k]);
    if (ec != std::errc{}) return false;
    p = next;
    if (k < 2) {
      if (p == end || *p != '.') return false;
      ++p;
    }
  }
  const int want[3] = {major, minor, patch};
  return std::lexicographical_compare(want, want + 3, parts, parts + 3) ||
         std::equal(want, want + 3, parts);
}

}  // namespace jetsource::detail
