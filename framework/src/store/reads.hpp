// detail: the event store's direct gets (one message by sequence or by subject) and what it reads
// from a commit's headers, shared by its reads, appends and snapshots.
#pragma once

#include <jetsource/event_store.hpp>
#include <jetsource/result.hpp>

#include "nats/handles.hpp"
#include "store/store_state.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace jetsource::detail::store {

/// Direct get (needs AllowDirect): the message, or nullptr when there is none (404). `wait` 0:
/// the context's timeout.
result<msg_ptr> direct_get(jsCtx* js, const std::string& stream, jsDirectGetMsgOptions& o,
                           std::string_view what, std::chrono::milliseconds wait = {});

/// The last message on `subject` of `stream` (nullptr: none).
result<msg_ptr> last_on_subject(const store_state& st, const std::string& stream,
                                const std::string& subject, std::chrono::milliseconds wait = {});

/// True when the event stream is replicated: its commit heads are then read from the stream
/// leader (ADR 0021).
inline bool heads_from_leader(const store_state& st) {
  return st.options.replicas > 1;
}

/// One message get answered by a replicated stream's leader ($JS.API.STREAM.MSG.GET): the
/// message at `sequence`, or the last on `last_by_subject` when that is set.
struct leader_get {
  const std::string& stream;
  std::uint64_t sequence = 0;
  std::string last_by_subject;
  std::string next_by_subject;  ///< the first message on it at or after `sequence`
  std::string what;             ///< for errors: "read sequence 7 of ORDERS"
  std::chrono::milliseconds patience{5000};
  bool retry_not_found = false;  ///< "none" is asked again until `patience` (a new leader)
};
/// The message (nullptr: none). While the stream elects a leader, asked again until `patience`,
/// then errc::timeout. Members that answer "no leader" at once (nats-server 2.9.10 lets them)
/// do not hide the leader's answer: leader_gets.cpp. Its stream sequence: reply_sequence.
result<msg_ptr> from_leader(const store_state& st, const leader_get& g);

/// The last message on `subject` of `stream`, read from the stream's leader
/// ($JS.API.STREAM.MSG.GET; nullptr: none). `wait` 0: the context's timeout.
result<msg_ptr> last_from_leader(const store_state& st, const std::string& stream,
                                 const std::string& subject, std::chrono::milliseconds wait = {});

/// The last commit on an aggregate's `subject` (nullptr: none). On a replicated stream it comes
/// from the stream leader: a direct get is answered by any replica, and a follower applies a
/// commit only after the leader acknowledged it, so a load right after an append (from another
/// process, or through another node) could miss it. Else by direct get.
result<msg_ptr> head_message(const store_state& st, const std::string& subject);

/// A commit's Es-Version (`seq`: its stream sequence, for the message); errc::decode_failed when
/// missing or not a number.
result<std::uint64_t> version_of(natsMsg* m, std::uint64_t seq);
/// The same for a message from a direct get or a leader get (which carry their sequence).
result<std::uint64_t> version_of(natsMsg* m);

/// A commit's id: Es-Commit-Id when Nats-Msg-Id holds a commit slot, else Nats-Msg-Id.
std::string commit_id_of(natsMsg* m);

/// The message at `sequence`, read from the stream's leader ($JS.API.STREAM.MSG.GET, not a
/// direct get, which a replica that has not applied it yet may answer with "not found");
/// nullptr when there is none. A "not found" is retried for up to `patience` (a new leader may
/// still be applying).
result<msg_ptr> get_from_leader(const store_state& st, std::uint64_t sequence,
                                std::chrono::milliseconds patience = std::chrono::seconds{2});

/// Sequence, version and commit id of a commit from a direct get or a leader get.
result<commit_head> head_of(natsMsg* m);

/// One get of last_on_subjects: the last message on `subject` of `stream`, awaited at most `wait`.
struct last_get {
  const std::string& stream;
  const std::string& subject;
  std::chrono::milliseconds wait;
  bool from_leader = false;  ///< ask the stream leader (last_from_leader), not any replica
};

/// The last message on each subject of `gets`, asked for at once: every request is sent, then the
/// replies are awaited together (one round trip for all, not one each; a `from_leader` get is
/// made while the others are in flight). Each answer, in order: the
/// message (nullptr: none; its stream sequence is `reply_sequence`, not natsMsg_GetSequence) or
/// that get's error (errc::timeout when not answered within its `wait`).
std::vector<result<msg_ptr>> last_on_subjects(const store_state& st,
                                              const std::vector<last_get>& gets);

/// What a read does with each message before the subject's last one (in order): the message and
/// its stream sequence. The message is only lent.
using message_sink = std::function<result<void>(natsMsg*, std::uint64_t)>;

/// Hands the messages of `subject` with sequence in (after, last_seq) to `sink` in order, once
/// each; the last one (`last`, at `last_seq`: the head, whose headers say what leads to it) is
/// the caller's (range_reads.cpp).
result<void> read_range(const store_state& st, const std::string& subject, std::uint64_t after,
                        natsMsg* last, std::uint64_t last_seq, const message_sink& sink);

/// The stream sequence of a message from a get: last_on_subjects, direct_get, from_leader (their
/// Nats-Sequence header, else what nats.c decoded); 0 if none.
std::uint64_t reply_sequence(natsMsg* m);

}  // namespace jetsource::detail::store
