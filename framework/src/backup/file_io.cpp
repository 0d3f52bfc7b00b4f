// The backup file's writer and reader: preamble (magic, version, header), framed records, the
// trailer and the SHA-256 over everything before it. docs/operations.md, "Backup file format".
#include "backup/format.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <nlohmann/json.hpp>

namespace jetsource::detail::backup {

namespace {

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

std::uint32_t from_be32(std::string_view s) {
  std::uint32_t v = 0;
  for (unsigned char c : s.substr(0, 4)) v = (v << 8) | c;
  return v;
}

error io_error(std::string_view what, const std::filesystem::path& p, int err) {
  return make_error(errc::io, "{} {}: {}", what, p.string(), std::strerror(err));
}

}  // namespace

// ---- writer ----

file_writer::file_writer(std::filesystem::path path, std::FILE* f)
    : path_(std::move(path)), partial_(path_.string() + ".partial"), file_(f) {}

file_writer::file_writer(file_writer&& o) noexcept
    : path_(std::move(o.path_)),
      partial_(std::move(o.partial_)),
      file_(std::exchange(o.file_, nullptr)),
      hash_(std::move(o.hash_)),
      bytes_(o.bytes_),
      buffer_(std::move(o.buffer_)),
      finished_(o.finished_) {}

file_writer::~file_writer() {
  if (file_) std::fclose(file_);
  if (!finished_ && !partial_.empty()) {
    std::error_code ec;
    std::filesystem::remove(partial_, ec);
  }
}

result<file_writer> file_writer::create(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return make_error(errc::invalid_argument,
                      "{} exists: a backup never overwrites a file (remove it or choose another "
                      "path)",
                      path.string());
  const std::string partial = path.string() + ".partial";
  int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("create", partial, errno);
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    int err = errno;
    ::close(fd);
    return io_error("open", partial, err);
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  return file_writer(path, f);
}

result<void> file_writer::write(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    return io_error("write", partial_, errno);
  hash_.update(bytes);
  bytes_ += bytes.size();
  return success();
}

result<void> file_writer::write_header(const backup_info& info) {
  auto json = header_json(info);
  JETSOURCE_TRY(write(magic));
  JETSOURCE_TRY(write(be32(format_version)));
  JETSOURCE_TRY(write(be32(static_cast<std::uint32_t>(json.size()))));
  return write(json);
}

result<void> file_writer::write_record(const record& r) {
  encode_record(r, buffer_);
  if (buffer_.size() > max_record_bytes)
    return make_error(errc::payload_too_large, "record at sequence {} is {} bytes (at most {})",
                      r.sequence, buffer_.size(), max_record_bytes);
  JETSOURCE_TRY(write(std::string_view(&record_tag, 1)));
  JETSOURCE_TRY(write(be32(static_cast<std::uint32_t>(buffer_.size()))));
  return write(buffer_);
}

result<std::string> file_writer::finish(const trailer& t) {
  nlohmann::ordered_json j{{"records", t.records},
                           {"first_sequence", t.first_sequence},
                           {"last_sequence", t.last_sequence}};
  auto json = j.dump();
  JETSOURCE_TRY(write(std::string_view(&end_tag, 1)));
  JETSOURCE_TRY(write(be32(static_cast<std::uint32_t>(json.size()))));
  JETSOURCE_TRY(write(json));
  auto digest = hash_.final();
  const std::string_view raw(reinterpret_cast<const char*>(digest.data()), digest.size());
  if (std::fwrite(raw.data(), 1, raw.size(), file_) != raw.size())
    return io_error("write", partial_, errno);
  bytes_ += raw.size();
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    return io_error("flush", partial_, errno);
  std::FILE* f = std::exchange(file_, nullptr);
  if (std::fclose(f) != 0) return io_error("close", partial_, errno);
  std::error_code ec;
  std::filesystem::rename(partial_, path_, ec);
  if (ec) return io_error("rename to", path_, ec.value());
  finished_ = true;
  return sha256::hex(digest);
}

// ---- reader ----

file_reader::file_reader(std::filesystem::path path, std::FILE* f, std::uint64_t size)
    : path_(std::move(path)), file_(f), size_(size) {}

file_reader::file_reader(file_reader&& o) noexcept
    : path_(std::move(o.path_)),
      file_(std::exchange(o.file_, nullptr)),
      size_(o.size_),
      offset_(o.offset_),
      hash_(std::move(o.hash_)),
      info_(std::move(o.info_)),
      buffer_(std::move(o.buffer_)),
      records_(o.records_),
      first_(o.first_),
      last_(o.last_),
      done_(o.done_) {}

file_reader::~file_reader() {
  if (file_) std::fclose(file_);
}

error file_reader::corrupt(std::string_view what) const {
  return make_error(errc::corrupt, "backup file {} is damaged (refused, nothing written): {}",
                    path_.string(), what);
}

result<void> file_reader::read(std::size_t n, std::string& out, std::string_view what) {
  if (n > size_ - offset_)
    return corrupt(fmt::format("truncated: {} needs {} bytes at offset {}, the file has {} left",
                               what, n, offset_, size_ - offset_));
  out.resize(n);
  if (n > 0 && std::fread(out.data(), 1, n, file_) != n)
    return make_error(errc::io, "read {}: {}", path_.string(), std::strerror(errno));
  offset_ += n;
  return success();
}

result<file_reader> file_reader::open(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec == std::errc::no_such_file_or_directory)
    return make_error(errc::not_found, "backup file {} does not exist", path.string());
  if (ec) return io_error("size of", path, ec.value());
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return io_error("open", path, errno);
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  file_reader r(path, f, size);
  std::string b;
  JETSOURCE_TRY(r.read(magic.size() + 8, b, "the preamble"));
  if (std::string_view(b).substr(0, magic.size()) != magic)
    return r.corrupt("it does not start with JSBACKUP (not a jetsource backup)");
  const auto version = from_be32(std::string_view(b).substr(magic.size()));
  if (version != format_version)
    return r.corrupt(
        fmt::format("format version {} (this build reads {})", version, format_version));
  const auto len = from_be32(std::string_view(b).substr(magic.size() + 4));
  r.hash_.update(b);
  if (len > max_header_json) return r.corrupt(fmt::format("header length {} too large", len));
  JETSOURCE_TRY(r.read(len, b, "the header"));
  r.hash_.update(b);
  auto info = parse_header_json(b);
  if (!info) return r.corrupt(info.error().message);
  r.info_ = std::move(info).value();
  r.info_.bytes = size;
  return r;
}

result<std::optional<record>> file_reader::next() {
  if (done_) return std::optional<record>{};
  std::string frame;
  JETSOURCE_TRY(read(5, frame, "a record's frame"));
  hash_.update(frame);
  const auto len = from_be32(std::string_view(frame).substr(1));
  if (frame[0] == end_tag) {
    if (len > max_header_json) return corrupt(fmt::format("trailer length {} too large", len));
    JETSOURCE_TRY(read(len, buffer_, "the trailer"));
    hash_.update(buffer_);
    JETSOURCE_TRY(read_end());
    return std::optional<record>{};
  }
  if (frame[0] != record_tag)
    return corrupt(fmt::format("unknown frame tag 0x{:02x} at offset {}",
                               static_cast<unsigned char>(frame[0]), offset_ - 5));
  if (len > max_record_bytes) return corrupt(fmt::format("record length {} too large", len));
  JETSOURCE_TRY(read(len, buffer_, "a record"));
  hash_.update(buffer_);
  auto r = decode_record(buffer_);
  if (!r) return corrupt(r.error().message);
  if (r->sequence < info_.from_sequence || r->sequence > info_.last_sequence ||
      r->sequence <= last_)
    return corrupt(fmt::format("record sequence {} out of order (after {}, range {}..{})",
                               r->sequence, last_, info_.from_sequence, info_.last_sequence));
  if (records_++ == 0) first_ = r->sequence;
  last_ = r->sequence;
  return std::optional<record>{std::move(r).value()};
}

// The trailer (in buffer_) against what was read, then the checksum, then the end of the file.
result<void> file_reader::read_end() {
  trailer t;
  try {
    auto j = nlohmann::json::parse(buffer_);
    t.records = j.at("records").get<std::uint64_t>();
    t.first_sequence = j.at("first_sequence").get<std::uint64_t>();
    t.last_sequence = j.at("last_sequence").get<std::uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return corrupt(fmt::format("trailer: {}", e.what()));
  }
  std::string stored;
  JETSOURCE_TRY(read(32, stored, "the SHA-256 checksum"));
  const auto digest = hash_.final();
  const std::string_view computed(reinterpret_cast<const char*>(digest.data()), digest.size());
  if (stored != computed) return corrupt("SHA-256 checksum mismatch (the content was altered)");
  if (offset_ != size_)
    return corrupt(fmt::format("{} bytes follow the checksum", size_ - offset_));
  if (t.records != records_ || t.first_sequence != first_ || t.last_sequence != last_)
    return corrupt(fmt::format("trailer says {} records {}..{}, the file holds {} ({}..{})",
                               t.records, t.first_sequence, t.last_sequence, records_, first_,
                               last_));
  info_.records = records_;
  info_.first_record_sequence = first_;
  info_.sha256 = sha256::hex(digest);
  done_ = true;
  return success();
}

}  // namespace jetsource::detail::backup
