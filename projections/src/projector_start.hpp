// detail: a projector's start, up to its threads (projector_start.cpp). Each step runs on the
// thread calling projector::start, before the projector's own threads exist.
#pragma once

#include <jetsource/projector.hpp>

#include "files.hpp"
#include "projector_state.hpp"

namespace jetsource::detail {

/// The projection's name and the options: what start needs, within their bounds.
result<void> validate(const projection& p, const projector_options& o);

/// One live projector per database, in any process: the <db>.lock flock.
result<file_lock> lock_database(const projection& p, const projector_options& o);

/// Opens the file in use, checked (a damaged page is found before anything is applied on top of
/// it; other processes' status learns it from <db>.failed) and migrated.
result<sqlite::database> open_database(projector_state& s, const projector_options& o);

/// Reads where the file stands, checks that it continues the stream it was built from
/// (recording the stream the first time) and binds the consumer to the file's mark. Requests
/// that time out while a cluster elects a leader are asked again (`o.start_patience`).
result<void> resume(projector_state& s, sqlite::database& db, const projector_options& o);

}  // namespace jetsource::detail
