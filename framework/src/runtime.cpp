// jetsource::runtime: the configured servers, or an embedded one.
#include <jetsource/runtime.hpp>

namespace jetsource {

result<runtime> runtime::open(connection_options options,
                              const std::filesystem::path& embedded_data_dir) {
  std::optional<embedded_server> server;
  if (options.urls.empty()) {
    JETSOURCE_TRY(s, embedded_server::start({.data_dir = embedded_data_dir}));
    options.urls = {s.url()};
    server.emplace(std::move(s));
  }
  JETSOURCE_TRY(conn, connection::connect(options));
  return runtime{std::move(server), std::move(conn)};
}

}  // namespace jetsource
