// Prototype probes for ADR 0014 (reactor groups), issue 12. Not part of the build.
// Build: g++ -std=c++20 -O1 react_probe.cpp -lnats -o react_probe
// Every mode talks to a nats-server -js given by URL (argv[1]); see the ADR for the commands.
//   kv-cas   N             : KV create + N compare-and-set updates (kvStore_Update), latencies
//   kv-ttl   TTL_MS ROUNDS : bucket MaxAge = TTL; put, then poll Get every 2 ms until gone
//   kv-watch N             : latency from a CAS update to a watcher on another connection seeing it
//   fill     STREAM P MSGS SUBJECTS : MSGS commits over SUBJECTS ids on x<P>.T.<p>.<id>
//   fetch    STREAM FILTER... : one durable (AckAll) per filter, ONE hand-driven fetch loop over
//                               all of them; checks stream order and partition per consumer
//   consumer STREAM FILTER START ROUNDS : js_AddConsumer / js_DeleteConsumer latencies
//   pub      STREAM P MSGS RATE        : live load: MSGS more commits at about RATE/s
//   (fetch with START=new TOTAL=N: consumers start at the head and stop after N messages)
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

using clk = std::chrono::steady_clock;
static double ms_since(clk::time_point t) {
  return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}
static void die(const char* what, natsStatus s) {
  std::fprintf(stderr, "%s: %s %s\n", what, natsStatus_GetText(s), nats_GetLastError(nullptr));
  std::exit(1);
}
#define CHECK(what, call)             \
  do {                                \
    natsStatus s_ = (call);           \
    if (s_ != NATS_OK) die(what, s_); \
  } while (0)

static void pct(const char* name, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * v.size()))]; };
  std::printf("%s: n=%zu p50=%.3f p90=%.3f p99=%.3f max=%.3f ms\n", name, v.size(), at(0.5),
              at(0.9), at(0.99), v.back());
}
static uint32_t fnv1a32(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

static natsConnection* connect(const char* url) {
  natsOptions* o;
  CHECK("opts", natsOptions_Create(&o));
  natsOptions_SetURL(o, url);
  natsOptions_SetSendAsap(o, true);
  natsConnection* nc;
  CHECK("connect", natsConnection_Connect(&nc, o));
  natsOptions_Destroy(o);
  return nc;
}
static jsCtx* js_of(natsConnection* nc) {
  jsCtx* js;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 4096;
  jo.PublishAsync.StallWait = 10000;
  jo.Wait = 60000;  // API calls: 64 filtered consumers created at once take seconds on 2.9.10
  CHECK("js", natsConnection_JetStream(&js, nc, &jo));
  return js;
}
static kvStore* bucket(jsCtx* js, const char* name, int64_t ttl_ns) {
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = name;
  kc.History = 1;
  kc.TTL = ttl_ns;
  kvStore* kv;
  CHECK("kv create", js_CreateKeyValue(&kv, js, &kc));
  return kv;
}

static int kv_cas(natsConnection* nc, int n) {
  jsCtx* js = js_of(nc);
  kvStore* kv = bucket(js, "LEASES_CAS", 0);
  std::vector<double> create, upd, stale, put;
  uint64_t rev = 0;
  for (int i = 0; i < 200; ++i) {
    auto t = clk::now();
    std::string key = "c." + std::to_string(i);
    CHECK("create", kvStore_CreateString(&rev, kv, key.c_str(), "{\"holder\":\"a\",\"epoch\":1}"));
    create.push_back(ms_since(t));
  }
  CHECK("create", kvStore_CreateString(&rev, kv, "lease.0", "{\"holder\":\"a\",\"epoch\":1}"));
  for (int i = 0; i < n; ++i) {
    std::string v = "{\"holder\":\"a\",\"epoch\":1,\"mark\":" + std::to_string(i) + "}";
    auto t = clk::now();
    uint64_t nrev = 0;
    CHECK("update", kvStore_UpdateString(&nrev, kv, "lease.0", v.c_str(), rev));
    upd.push_back(ms_since(t));
    t = clk::now();
    uint64_t bad = 0;
    natsStatus s = kvStore_UpdateString(&bad, kv, "lease.0", v.c_str(), rev);  // stale revision
    stale.push_back(ms_since(t));
    if (s == NATS_OK) {
      std::printf("STALE CAS SUCCEEDED at %d\n", i);
      return 1;
    }
    if (i == 0)
      std::printf("stale CAS refused: %s / %s\n", natsStatus_GetText(s),
                  nats_GetLastError(nullptr));
    rev = nrev;
    t = clk::now();
    CHECK("put", kvStore_PutString(&nrev, kv, "other", v.c_str()));
    put.push_back(ms_since(t));
  }
  pct("kv create (ExpectNoMessage)", create);
  pct("kv update (CAS, ok)", upd);
  pct("kv update (CAS, stale: refused)", stale);
  pct("kv put (no CAS)", put);
  kvStore_Destroy(kv);
  js_DeleteKeyValue(js, "LEASES_CAS");
  jsCtx_Destroy(js);
  return 0;
}

static int kv_ttl(natsConnection* nc, int ttl_ms, int rounds, const char* url) {
  jsCtx* js = js_of(nc);
  kvStore* kv = bucket(js, "LEASES_TTL", int64_t(ttl_ms) * 1000000);
  jsStreamInfo* si = nullptr;
  CHECK("info", js_GetStreamInfo(&si, js, "KV_LEASES_TTL", nullptr, nullptr));
  std::printf("bucket stream MaxAge = %lld ns\n", (long long)si->Config->MaxAge);
  jsStreamInfo_Destroy(si);
  // A watcher on another connection: does an age-expired entry show up as anything?
  natsConnection* nc2 = connect(url);
  jsCtx* js2 = js_of(nc2);
  kvStore* kv2;
  CHECK("kv2", js_KeyValue(&kv2, js2, "LEASES_TTL"));
  kvWatcher* w;
  CHECK("watch", kvStore_Watch(&w, kv2, "lease.>", nullptr));
  kvEntry* e = nullptr;
  kvWatcher_Next(&e, w, 200);  // initial marker (NULL entry)
  if (e) kvEntry_Destroy(e);
  std::vector<double> gone, create_ok;
  int watch_events = 0;
  for (int r = 0; r < rounds; ++r) {
    uint64_t rev;
    std::string key = "lease." + std::to_string(r);
    auto t0 = clk::now();
    CHECK("put", kvStore_PutString(&rev, kv, key.c_str(), "x"));
    kvWatcher_Next(&e, w, 100);  // the put itself
    if (e) kvEntry_Destroy(e), e = nullptr;
    for (;;) {
      kvEntry* g = nullptr;
      natsStatus s = kvStore_Get(&g, kv, key.c_str());
      if (g) kvEntry_Destroy(g);
      if (s == NATS_NOT_FOUND) break;
      if (s != NATS_OK) die("get", s);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    gone.push_back(ms_since(t0));
    while (kvWatcher_Next(&e, w, 1) == NATS_OK) {
      if (e) ++watch_events, kvEntry_Destroy(e), e = nullptr;
    }
    // Create on the expired key (ExpectNoMessage): succeeds at once?
    natsStatus s = kvStore_CreateString(&rev, kv, key.c_str(), "y");
    create_ok.push_back(s == NATS_OK ? 1 : 0);
    kvWatcher_Next(&e, w, 50);
    if (e) kvEntry_Destroy(e), e = nullptr;
  }
  pct("time from put to Get=not found (TTL included)", gone);
  std::printf("watcher saw %d events for %d age expiries; Create after expiry ok %d/%d\n",
              watch_events, rounds, int(std::count(create_ok.begin(), create_ok.end(), 1.0)),
              rounds);
  kvWatcher_Destroy(w);
  kvStore_Destroy(kv2);
  jsCtx_Destroy(js2);
  natsConnection_Destroy(nc2);
  kvStore_Destroy(kv);
  js_DeleteKeyValue(js, "LEASES_TTL");
  jsCtx_Destroy(js);
  return 0;
}

static int kv_watch(natsConnection* nc, int n, const char* url) {
  jsCtx* js = js_of(nc);
  kvStore* kv = bucket(js, "LEASES_W", 0);
  natsConnection* nc2 = connect(url);
  jsCtx* js2 = js_of(nc2);
  kvStore* kv2;
  CHECK("kv2", js_KeyValue(&kv2, js2, "LEASES_W"));
  kvWatcher* w;
  CHECK("watch", kvStore_Watch(&w, kv2, "lease.>", nullptr));
  kvEntry* e = nullptr;
  kvWatcher_Next(&e, w, 200);
  if (e) kvEntry_Destroy(e);
  uint64_t rev = 0;
  CHECK("create", kvStore_CreateString(&rev, kv, "lease.0", "v"));
  kvWatcher_Next(&e, w, 1000);
  if (e) kvEntry_Destroy(e);
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    auto t0 = clk::now();
    uint64_t nrev;
    CHECK("update", kvStore_UpdateString(&nrev, kv, "lease.0", "v", rev));
    rev = nrev;
    e = nullptr;
    CHECK("next", kvWatcher_Next(&e, w, 1000));
    if (!e || kvEntry_Revision(e) != rev) std::printf("unexpected watch entry\n");
    lat.push_back(ms_since(t0));
    kvEntry_Destroy(e);
  }
  pct("CAS update until a watcher (other connection) has it", lat);
  kvWatcher_Destroy(w);
  kvStore_Destroy(kv2);
  jsCtx_Destroy(js2);
  natsConnection_Destroy(nc2);
  kvStore_Destroy(kv);
  js_DeleteKeyValue(js, "LEASES_W");
  jsCtx_Destroy(js);
  return 0;
}

static int fill(natsConnection* nc, const char* stream, int p, int msgs, int subjects) {
  jsCtx* js = js_of(nc);
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = stream;
  std::string subj = std::string("x") + std::to_string(p) + ".>";
  const char* subs[] = {subj.c_str()};
  sc.Subjects = subs;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  CHECK("add stream", js_AddStream(&si, js, &sc, nullptr, nullptr));
  jsStreamInfo_Destroy(si);
  std::string body(150, 'b');
  std::vector<std::string> ids(subjects);
  for (int i = 0; i < subjects; ++i) ids[i] = "agg-" + std::to_string(i);
  auto t0 = clk::now();
  char s[128];
  for (int i = 0; i < msgs; ++i) {
    const auto& id = ids[i % subjects];
    std::snprintf(s, sizeof s, "x%d.%s.%u.%s", p, (i % 3) ? "Order" : "Stock",
                  fnv1a32(id) % uint32_t(p), id.c_str());
    CHECK("pub", js_PublishAsync(js, s, body.data(), int(body.size()), nullptr));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  CHECK("complete", js_PublishAsyncComplete(js, &po));
  std::printf("filled %s: %d msgs over %d ids, P=%d, in %.0f ms\n", stream, msgs, subjects, p,
              ms_since(t0));
  jsCtx_Destroy(js);
  return 0;
}

struct cons {
  std::string name, next, filter;
  int part = -1;  // expected partition token (-1: any)
  uint64_t expected = 0, got = 0, last_sseq = 0, disorder = 0, wrong = 0, since_ack = 0;
  std::string last_reply;
  struct req {
    uint64_t id, remaining;
    clk::time_point deadline;
  };
  std::deque<req> reqs;
};

static int fetch(natsConnection* nc, const char* stream, std::vector<std::string> filters,
                 int batch) {
  jsCtx* js = js_of(nc);
  std::vector<cons> cs(filters.size());
  std::map<std::string, size_t> by_name;
  uint64_t total = 0;
  auto tc = clk::now();
  for (size_t k = 0; k < filters.size(); ++k) {
    auto& c = cs[k];
    c.filter = filters[k] == "-" ? "" : filters[k];
    c.name = "probe-" + std::to_string(getpid()) + "-" + std::to_string(k);
    c.next = std::string("$JS.API.CONSUMER.MSG.NEXT.") + stream + "." + c.name;
    // partition token = 3rd token of x<P>.<Type>.<p>.<id> when the filter names it
    if (!c.filter.empty()) {
      auto a = c.filter.find('.'), b = c.filter.find('.', a + 1), d = c.filter.find('.', b + 1);
      std::string tok = c.filter.substr(b + 1, d - b - 1);
      if (tok != "*" && tok != ">") c.part = std::atoi(tok.c_str());
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = c.name.c_str();
    cc.AckPolicy = js_AckAll;
    cc.MaxDeliver = -1;
    cc.MaxAckPending = 20000;
    cc.AckWait = int64_t(60) * 1000000000;
    if (!c.filter.empty()) cc.FilterSubject = c.filter.c_str();
    const bool live = std::getenv("START") && std::string(std::getenv("START")) == "new";
    if (live) cc.DeliverPolicy = js_DeliverNew;
    jsConsumerInfo* ci = nullptr;
    CHECK("add consumer", js_AddConsumer(&ci, js, stream, &cc, nullptr, nullptr));
    c.expected = live ? UINT64_MAX / 2 : ci->NumPending;
    total = live ? std::strtoull(std::getenv("TOTAL"), nullptr, 10) : total + c.expected;
    jsConsumerInfo_Destroy(ci);
    by_name[c.name] = k;
  }
  double create_ms = ms_since(tc);
  std::string inbox = "_PRB." + std::to_string(getpid());
  natsSubscription* sub;
  CHECK("sub", natsConnection_SubscribeSync(&sub, nc, (inbox + ".>").c_str()));
  natsSubscription_SetPendingLimits(sub, -1, -1);
  uint64_t rid = 1, got = 0;
  char body[64];
  std::snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%lld}", batch, 2000000000LL);
  auto t0 = clk::now(), last_msg = clk::now();
  uint64_t dropped = 0;
  auto request = [&](size_t k) {
    auto& c = cs[k];
    if (c.got + 0 >= c.expected) return;
    uint64_t owed = 0;
    for (auto& r : c.reqs) owed += r.remaining;
    if (c.reqs.size() >= 2 || c.got + owed >= c.expected + batch) return;
    std::string reply = inbox + "." + std::to_string(k) + "." + std::to_string(rid);
    c.reqs.push_back({rid++, uint64_t(batch), clk::now() + std::chrono::milliseconds(2100)});
    natsConnection_PublishRequest(nc, c.next.c_str(), reply.c_str(), body, int(strlen(body)));
  };
  for (size_t k = 0; k < cs.size(); ++k) request(k), request(k);
  while (got < total) {
    natsMsg* m = nullptr;
    natsStatus s = natsSubscription_NextMsg(&m, sub, 50);
    if (s == NATS_TIMEOUT) {
      // 2.9.10 can drop an expired request without a status: a client deadline per request
      auto now = clk::now();
      for (size_t k = 0; k < cs.size(); ++k) {
        auto& q = cs[k].reqs;
        auto n = q.size();
        q.erase(std::remove_if(q.begin(), q.end(), [&](auto& r) { return r.deadline < now; }),
                q.end());
        if (q.size() != n) ++dropped, request(k);
      }
      if (ms_since(last_msg) > 10000) {
        std::printf("stalled at %llu/%llu\n", (unsigned long long)got, (unsigned long long)total);
        break;
      }
      continue;
    }
    if (s != NATS_OK) die("next", s);
    const char* subj = natsMsg_GetSubject(m);
    const char* reply = natsMsg_GetReply(m);
    if (std::strncmp(subj, "_PRB.", 5) == 0) {  // status: inbox.<k>.<rid>
      const char* p1 = subj + inbox.size() + 1;
      size_t k = std::strtoul(p1, nullptr, 10);
      uint64_t id = std::strtoull(std::strchr(p1, '.') + 1, nullptr, 10);
      auto& q = cs[k].reqs;
      q.erase(std::remove_if(q.begin(), q.end(), [&](auto& r) { return r.id == id; }), q.end());
      natsMsg_Destroy(m);
      request(k);
      continue;
    }
    last_msg = clk::now();  // data only: status messages keep coming while nothing arrives
    // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    const char* a = reply + 8;
    const char* b = std::strchr(a, '.') + 1;
    const char* d = std::strchr(b, '.');
    size_t k = by_name[std::string(b, d)];
    const char* e = std::strchr(d + 1, '.') + 1;
    uint64_t sseq = std::strtoull(e, nullptr, 10);
    auto& c = cs[k];
    if (sseq <= c.last_sseq) ++c.disorder;
    c.last_sseq = sseq;
    if (c.part >= 0) {
      const char* t2 = std::strchr(std::strchr(subj, '.') + 1, '.') + 1;
      if (std::atoi(t2) != c.part) ++c.wrong;
    }
    ++c.got;
    ++got;
    if (!c.reqs.empty() && --c.reqs.front().remaining == 0) c.reqs.pop_front();
    if (++c.since_ack >= uint64_t(batch) / 2 || c.got == c.expected) {
      natsConnection_PublishString(nc, reply, "+ACK");  // AckAll: covers everything before
      c.since_ack = 0;
    }
    natsMsg_Destroy(m);
    request(k);
  }
  double secs = ms_since(t0) / 1000;
  uint64_t disorder = 0, wrong = 0;
  for (auto& c : cs) disorder += c.disorder, wrong += c.wrong;
  std::printf(
      "fetch %zu consumer(s) batch %d: %llu msgs in %.3f s = %.0f msg/s; create %.1f ms; "
      "out-of-order %llu, wrong partition %llu; requests dropped by deadline %llu\n",
      cs.size(), batch, (unsigned long long)got, secs, got / secs, create_ms,
      (unsigned long long)disorder, (unsigned long long)wrong, (unsigned long long)dropped);
  natsSubscription_Destroy(sub);
  for (auto& c : cs) js_DeleteConsumer(js, stream, c.name.c_str(), nullptr, nullptr);
  jsCtx_Destroy(js);
  return disorder || wrong || got != total;
}

static int consumer_lat(natsConnection* nc, const char* stream, const char* filter, uint64_t start,
                        int rounds) {
  jsCtx* js = js_of(nc);
  std::vector<double> add, del, first;
  for (int r = 0; r < rounds; ++r) {
    std::string name = "lat-" + std::to_string(r);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name.c_str();
    cc.AckPolicy = js_AckAll;
    cc.MaxDeliver = -1;
    cc.FilterSubject = filter;
    if (start > 1) {
      cc.DeliverPolicy = js_DeliverByStartSequence;
      cc.OptStartSeq = start;
    }
    jsConsumerInfo* ci = nullptr;
    auto t = clk::now();
    CHECK("add", js_AddConsumer(&ci, js, stream, &cc, nullptr, nullptr));
    add.push_back(ms_since(t));
    jsConsumerInfo_Destroy(ci);
    // first message of a pull request
    std::string inbox = "_LAT." + std::to_string(r);
    natsSubscription* sub;
    CHECK("sub", natsConnection_SubscribeSync(&sub, nc, inbox.c_str()));
    std::string next = std::string("$JS.API.CONSUMER.MSG.NEXT.") + stream + "." + name;
    t = clk::now();
    natsConnection_PublishRequestString(nc, next.c_str(), inbox.c_str(),
                                        "{\"batch\":1,\"expires\":1000000000}");
    natsMsg* m = nullptr;
    CHECK("first", natsSubscription_NextMsg(&m, sub, 2000));
    first.push_back(ms_since(t));
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    t = clk::now();
    CHECK("del", js_DeleteConsumer(js, stream, name.c_str(), nullptr, nullptr));
    del.push_back(ms_since(t));
  }
  pct("js_AddConsumer", add);
  pct("first message of a pull", first);
  pct("js_DeleteConsumer", del);
  jsCtx_Destroy(js);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: react_probe URL MODE ARGS...\n");
    return 2;
  }
  natsConnection* nc = connect(argv[1]);
  std::string mode = argv[2];
  int rc = 2;
  if (mode == "kv-cas")
    rc = kv_cas(nc, std::atoi(argv[3]));
  else if (mode == "kv-ttl")
    rc = kv_ttl(nc, std::atoi(argv[3]), std::atoi(argv[4]), argv[1]);
  else if (mode == "kv-watch")
    rc = kv_watch(nc, std::atoi(argv[3]), argv[1]);
  else if (mode == "fill")
    rc = fill(nc, argv[3], std::atoi(argv[4]), std::atoi(argv[5]), std::atoi(argv[6]));
  else if (mode == "fetch") {
    int batch = std::getenv("BATCH") ? std::atoi(std::getenv("BATCH")) : 256;
    rc = fetch(nc, argv[3], std::vector<std::string>(argv + 4, argv + argc), batch);
  } else if (mode == "pub") {
    jsCtx* js = js_of(nc);
    int p = std::atoi(argv[4]), msgs = std::atoi(argv[5]), rate = std::atoi(argv[6]);
    std::string body(150, 'b');
    char s[128];
    auto t0 = clk::now();
    for (int i = 0; i < msgs; ++i) {
      std::string id = "live-" + std::to_string(i % 50000);
      std::snprintf(s, sizeof s, "x%d.Order.%u.%s", p, fnv1a32(id) % uint32_t(p), id.c_str());
      CHECK("pub", js_PublishAsync(js, s, body.data(), int(body.size()), nullptr));
      if (i % 100 == 99)
        std::this_thread::sleep_until(t0 +
                                      std::chrono::microseconds(int64_t(i + 1) * 1000000 / rate));
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    CHECK("complete", js_PublishAsyncComplete(js, &po));
    std::printf("published %d at %.0f/s\n", msgs, msgs / (ms_since(t0) / 1000));
    jsCtx_Destroy(js);
    rc = 0;
  } else if (mode == "consumer")
    rc =
        consumer_lat(nc, argv[3], argv[4], std::strtoull(argv[5], nullptr, 10), std::atoi(argv[6]));
  natsConnection_Destroy(nc);
  nats_Close();
  return rc;
}
