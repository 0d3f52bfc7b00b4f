// jetsource::runtime: the configured servers, or the store's one embedded server.
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

}  // namespace jetsource
