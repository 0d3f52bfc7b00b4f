// jetsource-bench peer-postgres: a throwaway PostgreSQL server and thin libpq helpers.
//
// pg_server runs Debian's PostgreSQL (initdb + postgres from /usr/lib/postgresql/<newest>/bin,
// or $JETSOURCE_PG_BIN) on a temporary data directory and a free loopback port; it is stopped
// by PID (fast shutdown, then SIGKILL) and its directory removed when the object goes, also on
// failure. As root, initdb and postgres run as the user `postgres` (or `nobody`): PostgreSQL
// refuses to run as root.
//
// Threads: a pg_server is owned by the thread that started it; each pg_conn by one thread.
#pragma once

#include "../bench.hpp"

#include <libpq-fe.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace bench::pg {

class server {
 public:
  /// initdb, start, wait until it accepts connections (throws failure, with the log's tail).
  server();
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// libpq connection string (TCP to 127.0.0.1, trust authentication).
  std::string conninfo() const;
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  /// "15.x" as the server reports it.
  std::string version() const { return version_; }

 private:
  void stop();
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string version_;
};

/// A result, cleared when it goes.
class result {
 public:
  explicit result(PGresult* r = nullptr) : r_(r) {}
  ~result() { PQclear(r_); }
  result(result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  result& operator=(result&&) = delete;
  result(const result&) = delete;
  result& operator=(const result&) = delete;
  PGresult* get() const { return r_; }
  int rows() const { return PQntuples(r_); }
  const char* at(int row, int col) const { return PQgetvalue(r_, row, col); }
  int length(int row, int col) const { return PQgetlength(r_, row, col); }

 private:
  PGresult* r_;
};

/// One connection (one thread at a time).
class conn {
 public:
  explicit conn(const std::string& conninfo);
  ~conn() { PQfinish(c_); }
  conn(const conn&) = delete;
  conn& operator=(const conn&) = delete;
  PGconn* get() const { return c_; }

  /// Runs `sql` (one or more statements, no parameters); throws failure on an error.
  void exec(const std::string& sql);
  /// Runs `sql`, returns its rows (throws failure on an error).
  result query(const std::string& sql);
  void prepare(const char* name, const char* sql, int params);
  /// Runs a prepared statement with text parameters; throws failure on an error.
  result run(const char* name, const std::vector<const char*>& params);
  /// COPY `table (columns)` FROM STDIN of `text` (COPY's text format, lines ending in \n).
  void copy_in(const std::string& target, const std::string& text);

 private:
  PGconn* c_ = nullptr;
};

/// Throws failure unless `r` is a success (command or rows).
void check(const result& r, PGconn* c, std::string_view what);

/// Escapes a value for COPY's text format.
void copy_field(std::string& out, std::string_view value);

}  // namespace bench::pg
