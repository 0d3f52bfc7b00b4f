// detail: the backup file format (docs/operations.md, "Backup file format"; ADR 0012): the
// writer and the reader of its preamble, records, trailer and SHA-256, shared by backup and
// restore.
//
// Thread-safety: a file_writer / file_reader belongs to one thread.
#pragma once

#include <jetsource/backup.hpp>
#include <jetsource/result.hpp>

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetsource::detail::backup {

inline constexpr std::string_view magic = "JSBACKUP";  // 8 bytes
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t max_header_json = 1 << 20;   // 1 MiB
inline constexpr std::size_t max_record_bytes = 1 << 28;  // 256 MiB
inline constexpr char record_tag = 'R';
inline constexpr char end_tag = 'E';

/// One stored message: everything the stream kept of it.
struct record {
  std::uint64_t sequence = 0;  ///< original stream sequence
  std::int64_t time_ns = 0;    ///< when the server stored it (Unix ns, UTC)
  std::string subject;
  std::vector<std::pair<std::string, std::string>> headers;  ///< in key order; keys may repeat
  std::string body;

  /// The first value of `key` ("" when absent).
  std::string_view header(std::string_view key) const;
};

/// The records' summary written after the last one.
struct trailer {
  std::uint64_t records = 0;
  std::uint64_t first_sequence = 0, last_sequence = 0;  ///< of the records; 0 when none
};

/// SHA-256 (OpenSSL's libcrypto), fed incrementally.
class sha256 {
 public:
  sha256();
  void update(std::string_view bytes);
  std::array<unsigned char, 32> final();
  static std::string hex(const std::array<unsigned char, 32>& digest);

 private:
  struct ctx_deleter {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, ctx_deleter> ctx_;
};

/// The backup_info fields stored in the header (JSON), and back (errc::corrupt when malformed).
std::string header_json(const backup_info& info);
result<backup_info> parse_header_json(std::string_view json);

/// Encodes / decodes a record's payload (big-endian lengths; errc::corrupt when malformed).
void encode_record(const record& r, std::string& out);
result<record> decode_record(std::string_view payload);

/// Writes a backup to `path`.partial; finish() fsyncs it and renames it to `path`. Removes the
/// partial file when destroyed unfinished.
class file_writer {
 public:
  /// errc::invalid_argument when `path` exists, errc::io when the file cannot be created.
  static result<file_writer> create(const std::filesystem::path& path);
  file_writer(file_writer&&) noexcept;
  file_writer& operator=(file_writer&&) = delete;
  ~file_writer();

  result<void> write_header(const backup_info& info);
  result<void> write_record(const record& r);
  /// Writes the trailer and the checksum; returns the checksum (hex).
  result<std::string> finish(const trailer& t);
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  file_writer(std::filesystem::path path, std::FILE* f);
  result<void> write(std::string_view bytes);

  std::filesystem::path path_, partial_;
  std::FILE* file_ = nullptr;
  sha256 hash_;
  std::uint64_t bytes_ = 0;
  std::string buffer_;  // reused for each record
  bool finished_ = false;
};

/// Reads a backup file from the start, checking as it goes; next() returns nullopt only after the
/// trailer and the checksum were checked and nothing follows them.
class file_reader {
 public:
  /// Opens and reads the preamble and header: errc::not_found, errc::io or errc::corrupt.
  static result<file_reader> open(const std::filesystem::path& path);
  file_reader(file_reader&&) noexcept;
  file_reader& operator=(file_reader&&) = delete;
  ~file_reader();

  const backup_info& info() const noexcept { return info_; }
  result<std::optional<record>> next();
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  file_reader(std::filesystem::path path, std::FILE* f, std::uint64_t size);
  result<void> read(std::size_t n, std::string& out, std::string_view what);
  result<void> read_end();
  error corrupt(std::string_view what) const;

  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0, offset_ = 0;
  sha256 hash_;
  backup_info info_;
  std::string buffer_;
  std::uint64_t records_ = 0, first_ = 0, last_ = 0;
  bool done_ = false;
};

/// A whole-file check (what verify_backup does) that also keeps the record at position `keep`
/// (1-based; 0: none), for restore's continuation check.
struct scan_result {
  backup_info info;
  std::optional<record> kept;
};
result<scan_result> scan(const std::filesystem::path& path, std::uint64_t keep = 0);

}  // namespace jetsource::detail::backup
