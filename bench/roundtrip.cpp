// jetsource-bench roundtrip: one direct get of an aggregate's head, and how the client waits for
// its reply (ADR 0023), each way in turn for every get of the same run:
//   request_us         plain natsConnection_Request: nats.c's reader thread queues the reply
//                      for its response multiplexer's thread, which wakes the caller (two
//                      hand-offs)
//   sync_inbox_us      plain natsConnection_PublishRequest + natsSubscription_NextMsg on a
//                      synchronous inbox: the reader thread wakes the caller (one hand-off)
//   caller_read_us     plain nats.c on a connection made with its event loop API, whose socket
//                      the caller polls and has nats.c parse (no hand-off)
//   jetsource_head_us  event_store::head on the benchmark's connection (default options: its
//                      read connection, ADR 0023), the head decoded into a commit_head
// --events gets (default 20,000) of 1,000 aggregates' heads per run; medians over every get of
// every run. ratio_request = request_us / jetsource_head_us (> 1: jetsource's get is faster).
#include "bench.hpp"

#include <bank/account.hpp>
#include <jetsource/repository.hpp>

#include <poll.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace bench {
namespace {

constexpr int heads = 1000;

// A plain nats.c connection on the event loop API, driven by the one thread that uses it.
class caller_read_connection {
 public:
  explicit caller_read_connection(const env& e) {
    natsOptions* o = nullptr;
    check(natsOptions_Create(&o), "natsOptions_Create");
    opts_.reset(o);
    check(natsOptions_SetURL(o, e.url.c_str()), "natsOptions_SetURL");
    check(natsOptions_SetSendAsap(o, true), "natsOptions_SetSendAsap");
    check(natsOptions_SetEventLoop(o, this, attach, read, write, detach), "event loop");
    natsConnection* nc = nullptr;
    check(natsConnection_Connect(&nc, o), "event-loop connect");
    nc_.reset(nc);
    natsInbox* inbox = nullptr;
    check(natsInbox_Create(&inbox), "natsInbox_Create");
    prefix_ = std::string(inbox) + ".";
    natsInbox_Destroy(inbox);
    natsSubscription* sub = nullptr;
    check(natsConnection_SubscribeSync(&sub, nc, (prefix_ + "*").c_str()), "subscribe");
    sub_.reset(sub);
    flush();
  }

  // One request, its reply read on this thread; false on a timeout or a wrong reply.
  bool request(const std::string& subject, std::uint64_t n) {
    const auto reply = prefix_ + std::to_string(n);
    if (natsConnection_PublishRequest(nc_.get(), subject.c_str(), reply.c_str(), nullptr, 0) !=
        NATS_OK)
      return false;
    flush();
    for (int polls = 0; polls < 1000; ++polls) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) natsConnection_ProcessReadEvent(nc_.get());
      if (write_wanted_) flush();
      std::uint64_t queued = 0;
      if (natsSubscription_QueuedMsgs(sub_.get(), &queued) != NATS_OK || queued == 0) continue;
      natsMsg* m = nullptr;
      if (natsSubscription_NextMsg(&m, sub_.get(), 1) != NATS_OK) return false;
      const bool ok = reply == natsMsg_GetSubject(m) && natsMsg_GetDataLength(m) > 0;
      natsMsg_Destroy(m);
      return ok;
    }
    return false;
  }

 private:
  void flush() {
    if (write_wanted_) natsConnection_ProcessWriteEvent(nc_.get());
  }
  static natsStatus attach(void** user, void* loop, natsConnection*, natsSock fd) {
    *user = loop;
    static_cast<caller_read_connection*>(loop)->fd_ = static_cast<int>(fd);
    return NATS_OK;
  }
  static natsStatus read(void*, bool) { return NATS_OK; }
  static natsStatus write(void* user, bool add) {
    static_cast<caller_read_connection*>(user)->write_wanted_ = add;
    return NATS_OK;
  }
  static natsStatus detach(void*) { return NATS_OK; }

  struct options_deleter {
    void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
  };
  struct connection_deleter {
    void operator()(natsConnection* nc) const { natsConnection_Destroy(nc); }
  };
  struct subscription_deleter {
    void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
  };
  std::unique_ptr<natsOptions, options_deleter> opts_;
  std::unique_ptr<natsConnection, connection_deleter> nc_;  // after opts_: destroyed first
  std::unique_ptr<natsSubscription, subscription_deleter> sub_;
  std::string prefix_;
  int fd_ = -1;
  bool write_wanted_ = false;
};

struct samples {
  std::vector<double> request, sync_inbox, caller_read, head;
  long errors = 0;
};

void one_run(const env& e, jetsource::event_store& store, const std::vector<std::string>& ids,
             const std::vector<std::string>& apis, caller_read_connection& caller,
             std::int64_t gets, samples& s) {
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "natsInbox_Create");
  const std::string prefix = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  check(natsConnection_SubscribeSync(&sub, e.raw_nc, (prefix + "*").c_str()), "subscribe");
  for (std::int64_t i = 0; i < gets; ++i) {
    const auto k = static_cast<std::size_t>(i % heads);
    auto t0 = clock_type::now();
    natsMsg* m = nullptr;
    natsStatus st = natsConnection_Request(&m, e.raw_nc, apis[k].c_str(), nullptr, 0, 5000);
    s.request.push_back(micros_since(t0));
    s.errors += st != NATS_OK;
    natsMsg_Destroy(m);

    const auto reply = prefix + std::to_string(i);
    t0 = clock_type::now();
    m = nullptr;
    st = natsConnection_PublishRequest(e.raw_nc, apis[k].c_str(), reply.c_str(), nullptr, 0);
    if (st == NATS_OK) st = natsSubscription_NextMsg(&m, sub, 5000);
    s.sync_inbox.push_back(micros_since(t0));
    s.errors += st != NATS_OK || m == nullptr || reply != natsMsg_GetSubject(m);
    natsMsg_Destroy(m);

    t0 = clock_type::now();
    const bool ok = caller.request(apis[k], static_cast<std::uint64_t>(i));
    s.caller_read.push_back(micros_since(t0));
    s.errors += !ok;

    t0 = clock_type::now();
    auto h = store.head(bank::account::type_name, ids[k]);
    s.head.push_back(micros_since(t0));
    s.errors += !h || !*h || (*h)->version != 2;
  }
  natsSubscription_Destroy(sub);
}

}  // namespace

void run_roundtrip(const env& e) {
  const std::int64_t gets = e.opt.events.value_or(20'000);
  stream_guard g(e, fmt::format("BENCH_RTT_{}", e.tag));
  auto store = must(jetsource::event_store::open(*e.conn, store_options_for(g.name())), "open");
  jetsource::repository<bank::account> accounts{store};
  std::vector<std::string> ids, apis;
  for (int i = 0; i < heads; ++i) {  // each head: 2 events, the state in the commit
    ids.push_back(fmt::format("rtt-{}", i));
    must(accounts.execute(ids.back(), bank::open_account{"owner", 100}), "open account");
    apis.push_back("$JS.API.DIRECT.GET." + g.name() + "." +
                   must(store.subject_of(bank::account::type_name, ids.back()), "subject"));
  }
  caller_read_connection caller(e);
  samples s;
  for (int run = 0; run < e.opt.runs; ++run) {
    one_run(e, store, ids, apis, caller, gets, s);
    check_stop();
  }
  const auto p90 = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() * 9 / 10];
  };
  const auto request = summarize(s.request), inbox = summarize(s.sync_inbox),
             caller_read = summarize(s.caller_read), head = summarize(s.head);
  line("roundtrip")
      .kv("gets", gets)
      .kv("heads", heads)
      .kv("runs", e.opt.runs)
      .kv("request_us", request.median)
      .kv("request_us_p90", p90(s.request))
      .kv("sync_inbox_us", inbox.median)
      .kv("sync_inbox_us_p90", p90(s.sync_inbox))
      .kv("caller_read_us", caller_read.median)
      .kv("caller_read_us_p90", p90(s.caller_read))
      .kv("jetsource_head_us", head.median)
      .kv("jetsource_head_us_p90", p90(s.head))
      .kv("errors", s.errors)
      .kv("ratio_request", request.median / head.median)
      .kv("ratio_sync_inbox", inbox.median / head.median)
      .kv("ratio_caller_read", caller_read.median / head.median)
      .print();
}

}  // namespace bench
