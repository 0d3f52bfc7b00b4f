// load's raw nats.c reads of one subject (the baselines beside jetsource's loads, and the
// options ADR 0017 measured): each returns microseconds, or < 0 on a wrong result. Everything runs
// on the caller's thread, on the env's raw connection.
#include "load_raw.hpp"

namespace bench::load_raw {

// The floor of any load: one DirectGet LastBySubject (the head alone).
double read_last(const env& e, const std::string& stream, const std::string& subject) {
  auto t0 = clock_type::now();
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.LastBySubject = subject.c_str();
  natsMsg* m = nullptr;
  check(js_DirectGetMsg(&m, e.raw_js, stream.c_str(), nullptr, &o), "direct get last");
  natsMsg_Destroy(m);
  return micros_since(t0);
}

// What a load with a snapshot asks the server for, raw (no decoding): the head and the snapshot,
// one after the other (`paired` false: two DirectGet LastBySubject round trips), or both in
// flight at once on an inbox of its own (`paired` true: what load_head_and_snapshot sends).
double read_head_and_snapshot(const env& e, const std::string& stream, const std::string& subject,
                              const std::string& snap_stream, const std::string& snap_subject,
                              bool paired) {
  auto t0 = clock_type::now();
  if (!paired) {
    for (const auto* ss : {&stream, &snap_stream}) {
      jsDirectGetMsgOptions o;
      jsDirectGetMsgOptions_Init(&o);
      o.LastBySubject = ss == &stream ? subject.c_str() : snap_subject.c_str();
      natsMsg* m = nullptr;
      check(js_DirectGetMsg(&m, e.raw_js, ss->c_str(), nullptr, &o), "direct get last");
      natsMsg_Destroy(m);
    }
    return micros_since(t0);
  }
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "inbox");
  natsSubscription* sub = nullptr;
  check(natsConnection_SubscribeSync(&sub, e.raw_nc, inbox), "subscribe");
  natsSubscription_AutoUnsubscribe(sub, 2);
  for (const auto* ss : {&stream, &snap_stream}) {
    auto body = fmt::format(R"({{"last_by_subj":"{}"}})", ss == &stream ? subject : snap_subject);
    auto api = "$JS.API.DIRECT.GET." + *ss;
    check(natsConnection_PublishRequest(e.raw_nc, api.c_str(), inbox, body.data(),
                                        static_cast<int>(body.size())),
          "publish request");
  }
  for (int i = 0; i < 2; ++i) {
    natsMsg* m = nullptr;
    check(natsSubscription_NextMsg(&m, sub, 10'000), "direct get reply");
    natsMsg_Destroy(m);
  }
  double us = micros_since(t0);
  natsSubscription_Destroy(sub);
  natsInbox_Destroy(inbox);
  return us;
}

// The stream sequences of a subject's messages (untimed: what a local index would hold).
std::vector<std::uint64_t> sequences_of(const env& e, const std::string& stream,
                                        const std::string& subject) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  natsSubscription* sub = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  check(js_SubscribeSync(&sub, e.raw_js, subject.c_str(), nullptr, &so, &err), "ordered consumer");
  std::vector<std::uint64_t> seqs;
  for (;;) {
    natsMsg* m = nullptr;
    check(natsSubscription_NextMsg(&m, sub, 10'000), "ordered consumer next message");
    jsMsgMetaData* md = nullptr;
    if (natsMsg_GetMetaData(&md, m) != NATS_OK) {
      natsMsg_Destroy(m);
      continue;
    }
    seqs.push_back(md->Sequence.Stream);
    std::uint64_t pending = md->NumPending;
    jsMsgMetaData_Destroy(md);
    natsMsg_Destroy(m);
    if (pending == 0) break;
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  return seqs;
}

// The local-index option of ADR 0017 (not taken), at its best: the sequences are known, so the
// head is checked (one DirectGet LastBySubject) and every commit is asked for by sequence with
// all requests in flight at once ($JS.API.DIRECT.GET.<stream> {"seq":N} on one inbox).
double read_indexed(const env& e, const std::string& stream, const std::string& subject,
                    const std::vector<std::uint64_t>& seqs) {
  auto t0 = clock_type::now();
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.LastBySubject = subject.c_str();
  natsMsg* last = nullptr;
  check(js_DirectGetMsg(&last, e.raw_js, stream.c_str(), nullptr, &o), "direct get last");
  const bool fresh = natsMsg_GetSequence(last) == seqs.back();
  natsMsg_Destroy(last);
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "inbox");
  natsSubscription* sub = nullptr;
  check(natsConnection_SubscribeSync(&sub, e.raw_nc, inbox), "subscribe");
  const std::string api = "$JS.API.DIRECT.GET." + stream;
  for (auto seq : seqs) {
    auto body = fmt::format(R"({{"seq":{}}})", seq);
    check(natsConnection_PublishRequest(e.raw_nc, api.c_str(), inbox, body.data(),
                                        static_cast<int>(body.size())),
          "publish request");
  }
  std::size_t ok = 0;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    natsMsg* m = nullptr;
    check(natsSubscription_NextMsg(&m, sub, 10'000), "direct get reply");
    const char* status = nullptr;
    if (natsMsgHeader_Get(m, "Status", &status) != NATS_OK) ++ok;
    natsMsg_Destroy(m);
  }
  double us = micros_since(t0);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsInbox_Destroy(inbox);
  if (!fresh || ok != seqs.size()) {
    note("indexed read of {}: {} of {} messages, head fresh {}", subject, ok, seqs.size(), fresh);
    return -1;
  }
  return us;
}

double read_direct(const env& e, const std::string& stream, const std::string& subject,
                   int expect) {
  auto t0 = clock_type::now();
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.LastBySubject = subject.c_str();
  natsMsg* m = nullptr;
  check(js_DirectGetMsg(&m, e.raw_js, stream.c_str(), nullptr, &o), "direct get last");
  const std::uint64_t last = natsMsg_GetSequence(m);
  natsMsg_Destroy(m);
  int n = 0;
  for (std::uint64_t next = 1;;) {
    jsDirectGetMsgOptions_Init(&o);
    o.NextBySubject = subject.c_str();
    o.Sequence = next;
    m = nullptr;
    check(js_DirectGetMsg(&m, e.raw_js, stream.c_str(), nullptr, &o), "direct get next");
    std::uint64_t seq = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    ++n;
    if (seq >= last) break;
    next = seq + 1;
  }
  double us = micros_since(t0);
  if (n != expect) {
    note("direct read of {}: {} messages, expected {}", subject, n, expect);
    return -1;
  }
  return us;
}

// Ordered consumer until NumPending == 0; its teardown (unsubscribe, which deletes the consumer
// with a round trip) is not timed.
double read_ordered(const env& e, const std::string& stream, const std::string& subject,
                    int expect) {
  auto t0 = clock_type::now();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  natsSubscription* sub = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  check(js_SubscribeSync(&sub, e.raw_js, subject.c_str(), nullptr, &so, &err), "ordered consumer");
  int n = 0;
  for (;;) {
    natsMsg* m = nullptr;
    natsStatus s = natsSubscription_NextMsg(&m, sub, 10'000);
    if (s != NATS_OK) {
      natsSubscription_Destroy(sub);
      check(s, "ordered consumer next message");
    }
    jsMsgMetaData* md = nullptr;
    if (natsMsg_GetMetaData(&md, m) != NATS_OK) {  // not a data message
      natsMsg_Destroy(m);
      continue;
    }
    ++n;
    std::uint64_t pending = md->NumPending;
    jsMsgMetaData_Destroy(md);
    natsMsg_Destroy(m);
    if (pending == 0) break;
  }
  double us = micros_since(t0);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  if (n != expect) {
    note("ordered read of {}: {} messages, expected {}", subject, n, expect);
    return -1;
  }
  return us;
}

// Waits (untimed) until the stream has no consumer left. jetsource deletes a read's ordered
// consumer without waiting for the reply, and the raw ordered read deletes its consumer after its
// clock stops: either way the server's work of deleting it must not land in the next read timed.
void quiesce(const env& e, const std::string& stream) {
  for (int i = 0; i < 1000; ++i) {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    check(js_GetStreamInfo(&si, e.raw_js, stream.c_str(), nullptr, &err), "stream info");
    const auto consumers = si->State.Consumers;
    jsStreamInfo_Destroy(si);
    if (consumers == 0) return;
    nats_Sleep(1);
  }
  note("{}: consumers still present after 1 s", stream);
}

}  // namespace bench::load_raw
