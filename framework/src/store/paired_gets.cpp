// Several direct gets in flight at once: a cold load asks for an aggregate's head and its
// snapshot together (one round trip instead of two; ADR 0017). Plain core-NATS requests to
// $JS.API.DIRECT.GET.<stream>, answered on one of the connection's pooled inboxes
// (nats/reply_inboxes.hpp) that the caller's thread reads.
#include "log.hpp"
#include "nats/reply_inboxes.hpp"
#include "store/ids.hpp"
#include "store/reads.hpp"
#include "wire/headers.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace jetsource::detail::store {

namespace {

using clock_type = std::chrono::steady_clock;

// A reply's status ("" for a message, "404" for none, "503" no responders, ...).
std::string status_of(natsMsg* m) {
  return header(m, "Status");
}

result<msg_ptr> answer_of(msg_ptr m, const last_get& g) {
  const std::string status = status_of(m.get());
  if (status.empty()) return m;
  if (status == "404") return msg_ptr{};
  auto what = fmt::format("read last message of {} from {}", g.subject, g.stream);
  if (status == "503") return nats_error(NATS_NO_RESPONDERS, what);
  return make_error(errc::server_error, "{}: status {} {}", what, status,
                    header(m.get(), "Description"));
}

}  // namespace

std::uint64_t reply_sequence(natsMsg* m) {
  auto seq = parse_u64(header(m, detail::hdr_sequence));
  return seq ? *seq : natsMsg_GetSequence(m);  // the leader's answer: decoded by nats.c
}

std::vector<result<msg_ptr>> last_on_subjects(const store_state& st,
                                              const std::vector<last_get>& gets) {
  std::vector<result<msg_ptr>> out;
  auto fail_all = [&](const error& e) {
    for (std::size_t i = 0; i < gets.size(); ++i) out.emplace_back(e);
    return std::move(out);
  };
  auto started = st.conn->replies->start(gets.size(), "read last messages");
  if (!started) return fail_all(started.error());
  auto& replies = started.value();

  const auto start = clock_type::now();
  std::vector<std::optional<result<msg_ptr>>> got(gets.size());
  std::size_t open = gets.size();
  for (std::size_t i = 0; i < gets.size(); ++i) {
    if (gets[i].from_leader) continue;  // below, while these are in flight
    const std::string api = "$JS.API.DIRECT.GET." + gets[i].stream;
    const std::string body = nlohmann::json{{"last_by_subj", gets[i].subject}}.dump();
    natsStatus s = replies.send(i, api, body);
    if (s != NATS_OK) {
      got[i] =
          result<msg_ptr>(nats_error(s, fmt::format("read last message of {}", gets[i].subject)));
      --open;
    }
  }
  for (std::size_t i = 0; i < gets.size(); ++i)
    if (gets[i].from_leader) {
      got[i] = last_from_leader(st, gets[i].stream, gets[i].subject, gets[i].wait);
      --open;
    }
  while (open > 0) {
    // Wait until the earliest deadline among the gets still open.
    auto deadline = clock_type::time_point::max();
    for (std::size_t i = 0; i < gets.size(); ++i)
      if (!got[i]) deadline = std::min(deadline, start + gets[i].wait);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    msg_ptr m;
    std::size_t idx = 0;
    natsStatus s = replies.next(m, idx, std::max(left, std::chrono::milliseconds{1}));
    if (s == NATS_TIMEOUT) {
      for (std::size_t i = 0; i < gets.size(); ++i)
        if (!got[i] && clock_type::now() >= start + gets[i].wait) {
          got[i] = result<msg_ptr>(nats_error(
              NATS_TIMEOUT,
              fmt::format("read last message of {} from {}", gets[i].subject, gets[i].stream)));
          --open;
        }
      continue;
    }
    if (s != NATS_OK) {
      for (std::size_t i = 0; i < gets.size(); ++i)
        if (!got[i]) got[i] = result<msg_ptr>(nats_error(s, "read replies of direct gets"));
      open = 0;
      break;
    }
    if (got[idx]) continue;  // answered twice (cannot happen)
    got[idx] = answer_of(std::move(m), gets[idx]);
    --open;
  }
  for (auto& g : got) out.push_back(std::move(*g));
  return out;
}

}  // namespace jetsource::detail::store
