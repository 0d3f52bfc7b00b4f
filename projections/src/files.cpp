// detail: projection database files across rebuilds.
#include "files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace jetsource::detail {

std::optional<path> read_marker(const path& marker) {
  auto name = read_text(marker);
  if (!name) return std::nullopt;
  return marker.parent_path() / *name;
}

result<void> write_marker(const path& marker, const path& file) {
  return write_text(marker, file.filename().string());
}

std::optional<std::string> read_text(const path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) return std::nullopt;
  return line;
}

result<void> write_text(const path& file, std::string_view text) {
  auto tmp = with_suffix(file, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << '\n';
    out.flush();
    if (!out) return make_error(errc::io, "cannot write {}", tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec)
    return make_error(errc::io, "cannot rename {} to {}: {}", tmp.string(), file.string(),
                      ec.message());
  return success();
}

path current_file(const path& db) {
  if (auto p = read_marker(with_suffix(db, ".current")); p && std::filesystem::exists(*p))
    return *p;
  return db;
}

result<void> point_to(const path& db, const path& file) {
  return write_marker(with_suffix(db, ".current"), file);
}

int generation_of(const path& db, const path& file) {
  auto base = db.filename().string() + ".g";
  auto name = file.filename().string();
  if (name.rfind(base, 0) != 0) return 0;
  int n = 0;
  std::from_chars(name.data() + base.size(), name.data() + name.size(), n);
  return n;
}

void remove_database_files(const path& file) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"})
    std::filesystem::remove(with_suffix(file, suffix), ec);
}

result<file_lock> file_lock::try_acquire(const path& file) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::io, "cannot open {}: {}", file.string(), std::strerror(errno));
  // A status probe (held()) may hold the lock for a moment: look again before saying busy.
  int rc = ::flock(fd, LOCK_EX | LOCK_NB);
  for (int i = 0; rc != 0 && errno == EWOULDBLOCK && i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return make_error(errc::busy, "{} is locked by another process", file.string());
    return make_error(errc::io, "cannot lock {}: {}", file.string(), std::strerror(err));
  }
  return file_lock(fd);
}

bool file_lock::held(const path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool busy = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases it
  return busy;
}

file_lock& file_lock::operator=(file_lock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

file_lock::~file_lock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace jetsource::detail
