// detail: message gets answered by a replicated stream's leader ($JS.API.STREAM.MSG.GET.<stream>;
// ADR 0021). nats.c's js_GetMsg and js_GetLastMsg take the first reply. In nats-server 2.9.10
// every member of the stream's group that believes the group has no leader (a node just
// restarted and still catching up, or one that lost the meta leader) answers at once
// "JetStream system temporarily unavailable" (10008, jsMsgGetRequest/isGroupLeaderless), and that
// answer can come before the leader's: after a leader kill, every read of one test failed for
// 25 s while the stream had a leader (make test, 2026-12-03). So when the first answer is that
// one, the request is sent again on an inbox of the reader's own, where every server's answer is
// seen, and the leader's is taken when it comes.
//
// Thread-safety: none needed; everything here is the calling thread's (the inbox subscription
// goes to the store's reaper, which retires it: late answers may still arrive).
#include "store/reads.hpp"
#include "wire/headers.hpp"

#include <sodium.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace jetsource::detail::store {

namespace {

using clock_type = std::chrono::steady_clock;

// How long the answers to one request are awaited once a member said "no leader" before the
// request is sent again (the leader answers within a round trip when there is one).
constexpr auto resend_after = std::chrono::milliseconds{100};

bool leaderless(int err_code) {
  return err_code == JSClusterNotAvailErr || err_code == JSClusterNotLeaderErr;
}

std::optional<std::string> from_base64(const std::string& b64) {
  std::string out(b64.size() / 4 * 3 + 3, '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(),
                        b64.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  out.resize(len);
  return out;
}

// The stored message in an answer's "message": subject, headers and body as stored; its stream
// sequence in Nats-Sequence, where reply_sequence reads it (as for a direct get's answer).
result<msg_ptr> stored_message(const nlohmann::json& j, std::string_view what) {
  const auto subject = j.value("subject", std::string{});
  const auto seq = j.value("seq", std::uint64_t{0});
  auto data = from_base64(j.value("data", std::string{}));
  auto hdrs = from_base64(j.value("hdrs", std::string{}));
  if (subject.empty() || seq == 0 || !data || !hdrs)
    return make_error(errc::server_error, "{}: the leader's answer is not a stored message", what);
  natsMsg* raw = nullptr;
  if (natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, data->data(),
                                    static_cast<int>(data->size()));
      s != NATS_OK)
    return nats_error(s, what);
  msg_ptr m(raw);
  // "NATS/1.0\r\nName: value\r\n...\r\n\r\n": the first line is the version.
  std::string_view rest(*hdrs);
  for (auto eol = rest.find("\r\n"); eol != std::string_view::npos; eol = rest.find("\r\n")) {
    const auto line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    const auto colon = line.find(':');
    if (line.starts_with("NATS/") || colon == std::string_view::npos) continue;
    auto value = line.substr(colon + 1);
    value.remove_prefix(std::min(value.find_first_not_of(' '), value.size()));
    natsMsgHeader_Add(m.get(), std::string(line.substr(0, colon)).c_str(),
                      std::string(value).c_str());
  }
  natsMsgHeader_Set(m.get(), hdr_sequence, std::to_string(seq).c_str());
  return m;
}

// One answer on the inbox: the message, none (nullptr), or an error; `no_leader` is set when it
// said "no leader here".
result<msg_ptr> read_answer(natsMsg* reply, std::string_view what, bool& no_leader) {
  auto j =
      nlohmann::json::parse(natsMsg_GetData(reply),
                            natsMsg_GetData(reply) + natsMsg_GetDataLength(reply), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(errc::server_error, "{}: an answer that is not JSON", what);
  if (auto m = j.find("message"); m != j.end() && m->is_object()) return stored_message(*m, what);
  const auto& e = j.value("error", nlohmann::json::object());
  const int code = e.value("err_code", 0);
  no_leader = leaderless(code);
  if (code == JSNoMessageFoundErr || e.value("code", 0) == 404) return msg_ptr{};
  return make_error(errc::server_error, "{}: {} (jetstream error {})", what,
                    e.value("description", std::string("no description")), code);
}

// Sends `body` to the message get API on an inbox of our own and waits for an answer other than
// "no leader", sending again every resend_after, until `give_up`.
result<msg_ptr> ask_every_server(const store_state& st, const std::string& stream,
                                 const std::string& body, std::string_view what,
                                 clock_type::time_point give_up) {
  natsConnection* nc = st.conn->nc.get();
  natsInbox* raw_inbox = nullptr;
  if (natsStatus s = natsInbox_Create(&raw_inbox); s != NATS_OK)
    return nats_error(s, "create an inbox");
  inbox_ptr inbox(raw_inbox);
  natsSubscription* raw_sub = nullptr;
  if (natsStatus s = natsConnection_SubscribeSync(&raw_sub, nc, inbox.get()); s != NATS_OK)
    return nats_error(s, "subscribe to an inbox");
  subscription_ptr sub(raw_sub);
  const auto done = [&](result<msg_ptr> r) {
    st.reaper->add(nc, std::move(sub));  // other servers' answers may still come
    return r;
  };
  const std::string api = "$JS.API.STREAM.MSG.GET." + stream;
  for (;;) {
    if (natsStatus s = natsConnection_PublishRequest(nc, api.c_str(), inbox.get(), body.data(),
                                                     static_cast<int>(body.size()));
        s != NATS_OK)
      return done(nats_error(s, what));
    const auto resend = std::min(give_up, clock_type::now() + resend_after);
    for (auto now = clock_type::now(); now < resend; now = clock_type::now()) {
      natsMsg* raw = nullptr;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(resend - now);
      natsStatus s =
          natsSubscription_NextMsg(&raw, sub.get(), std::max<std::int64_t>(left.count(), 1));
      msg_ptr reply(raw);
      if (s == NATS_TIMEOUT) break;
      if (s != NATS_OK) return done(nats_error(s, what));
      bool no_leader = false;
      auto answer = read_answer(reply.get(), what, no_leader);
      if (!no_leader) return done(std::move(answer));
    }
    if (clock_type::now() >= give_up)
      return done(make_error(errc::timeout,
                             "{}: no leader answered; every answer said \"JetStream system "
                             "temporarily unavailable\"",
                             what));
  }
}

}  // namespace

result<msg_ptr> from_leader(const store_state& st, const leader_get& g) {
  const auto give_up = clock_type::now() + g.patience;
  if (!g.next_by_subject.empty())  // nats.c 3.4.1 has no call for it
    return ask_every_server(
        st, g.stream,
        nlohmann::json{{"seq", g.sequence}, {"next_by_subj", g.next_by_subject}}.dump(), g.what,
        give_up);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = g.patience.count();
  for (;;) {
    natsMsg* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = g.last_by_subject.empty()
                       ? js_GetMsg(&raw, st.js.get(), g.stream.c_str(), g.sequence, &jo, &jerr)
                       : js_GetLastMsg(&raw, st.js.get(), g.stream.c_str(),
                                       g.last_by_subject.c_str(), &jo, &jerr);
    result<msg_ptr> got = msg_ptr(raw);
    if (s == NATS_NOT_FOUND) {
      got = msg_ptr{};
    } else if (s != NATS_OK && leaderless(jerr)) {
      const auto body = g.last_by_subject.empty()
                            ? nlohmann::json{{"seq", g.sequence}}.dump()
                            : nlohmann::json{{"last_by_subj", g.last_by_subject}}.dump();
      got = ask_every_server(st, g.stream, body, g.what, give_up);
    } else if (s != NATS_OK) {
      return nats_error(s, g.what, jerr);
    }
    // A new leader may still be applying what the old one acknowledged: "none" is asked again.
    if (!got || *got || !g.retry_not_found || clock_type::now() >= give_up) return got;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

}  // namespace jetsource::detail::store
