// detail: the steps a rebuild and the live projector share to switch a projection database to
// a rebuilt file (docs/adr/0008).
#pragma once

#include <jetsource/projection.hpp>
#include <jetsource/projector.hpp>

#include "consumer_admin.hpp"
#include "nats/handles.hpp"

#include <filesystem>
#include <string>

namespace jetsource::detail {

/// Points the database at the rebuilt `file`, then removes the ready/rebuilding markers, the
/// rebuild's consumer and the file that was in use before.
result<void> adopt_file(connection_state& c, const projection& p, const projector_options& o,
                        const std::filesystem::path& file);

/// Fills the rebuild fields of a status from the markers of `database`.
void describe_rebuild(projection_status& out, const std::filesystem::path& database,
                      std::string_view name);

}  // namespace jetsource::detail
