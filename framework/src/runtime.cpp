// jetsource::runtime: the configured servers, or the store's one embedded server (shared).
#include <jetsource/runtime.hpp>

#include "embedded_store.hpp"

namespace jetsource {

result<runtime> runtime::open(connection_options options,
                              const std::filesystem::path& embedded_data_dir) {
  if (options.urls.empty())
    return detail::open_embedded_store(std::move(options), embedded_data_dir,
                                       std::chrono::seconds{30});
  JETSOURCE_TRY(conn, connection::connect(options));
  return runtime{nullptr, std::nullopt, std::move(conn)};
}

runtime::runtime(std::shared_ptr<detail::embedded_store_membership> m,
                 std::optional<embedded_server> s, connection c)
    : membership(std::move(m)), server(std::move(s)), conn(std::move(c)) {}

runtime& runtime::operator=(runtime&& other) noexcept {
  if (this != &other) {
    runtime old(std::move(*this));  // leaves the store it used (its destructor)
    membership = std::move(other.membership);
    server = std::move(other.server);
    conn = std::move(other.conn);
  }
  return *this;
}

runtime::~runtime() {
  if (membership) membership->leave(server);  // members are destroyed after: conn, server, ...
}

}  // namespace jetsource
