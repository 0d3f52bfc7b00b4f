// Prototype for ADR 0014 (reactor groups): a partition lease in a JetStream KV bucket, renewed by
// compare-and-set (kvStore_Update with the last revision), expired by the OBSERVER's clock (a
// revision unchanged for L ms), taken over by CAS; the new owner then replaces the partition's
// consumer (named per tenure) from the checkpoint carried in the lease and pulls the first event.
// Not part of the build.  g++ -std=c++20 -O1 lease_probe.cpp -lnats -o lease_probe
//   lease_probe URL hold STREAM P L_MS NAME   : acquire, renew every L/3, pull from its consumer
//   lease_probe URL take STREAM P L_MS NAME   : wait for the lease to expire, take it over; prints
//                                               realtime ns at expiry seen / CAS won / first event
// Lease value: "<holder> <epoch> <checkpoint> <consumer>". Bucket REACT_LEASES, key p.<P>.
#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

using clk = std::chrono::steady_clock;
static long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

struct lease {
  std::string holder, consumer;
  uint64_t epoch = 0, checkpoint = 0;
};
static lease parse(const char* v, int n) {
  lease l;
  char h[128] = {}, c[128] = {};
  unsigned long long e = 0, k = 0;
  std::string s(v, n);
  if (std::sscanf(s.c_str(), "%127s %llu %llu %127s", h, &e, &k, c) == 4) l = {h, c, e, k};
  return l;
}
static std::string value(const lease& l) {
  return l.holder + " " + std::to_string(l.epoch) + " " + std::to_string(l.checkpoint) + " " +
         l.consumer;
}

// A consumer for partition p, named per tenure: <reactor>-p<p>-e<epoch>; from `from`.
static std::string make_consumer(jsCtx* js, const char* stream, int p, uint64_t epoch,
                                 uint64_t from, const char* name) {
  std::string cname = std::string("react-p") + std::to_string(p) + "-e" + std::to_string(epoch);
  std::string filter = std::string("x16.*.") + std::to_string(p) + ".*";
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = cname.c_str();
  cc.AckPolicy = js_AckAll;
  cc.MaxDeliver = -1;
  cc.FilterSubject = filter.c_str();
  cc.DeliverPolicy = js_DeliverByStartSequence;
  cc.OptStartSeq = from;
  jsConsumerInfo* ci = nullptr;
  CHECK("add consumer", js_AddConsumer(&ci, js, stream, &cc, nullptr, nullptr));
  jsConsumerInfo_Destroy(ci);
  (void)name;
  return cname;
}

// One pull of 1 message; returns its status text ("" for a data message) and stream sequence.
static std::string pull_one(natsConnection* nc, const char* stream, const std::string& cname,
                            uint64_t& sseq) {
  std::string inbox = "_LP." + cname + "." + std::to_string(now_ns());
  natsSubscription* sub;
  CHECK("sub", natsConnection_SubscribeSync(&sub, nc, inbox.c_str()));
  std::string next = std::string("$JS.API.CONSUMER.MSG.NEXT.") + stream + "." + cname;
  natsConnection_PublishRequestString(nc, next.c_str(), inbox.c_str(),
                                      "{\"batch\":1,\"expires\":500000000}");
  natsMsg* m = nullptr;
  std::string out = "timeout";
  if (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
    const char* st = nullptr;
    if (natsMsgHeader_Get(m, "Status", &st) == NATS_OK) {
      const char* d = "";
      natsMsgHeader_Get(m, "Description", &d);
      out = std::string(st) + " " + d;
    } else {
      out = "";
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, m) == NATS_OK) sseq = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    natsMsg_Destroy(m);
  }
  natsSubscription_Destroy(sub);
  return out;
}

int main(int argc, char** argv) {
  if (argc < 7) return 2;
  const char* url = argv[1];
  std::string mode = argv[2];
  const char* stream = argv[3];
  int p = std::atoi(argv[4]);
  auto L = std::chrono::milliseconds(std::atoi(argv[5]));
  std::string me = argv[6];
  natsOptions* o;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url);
  natsOptions_SetSendAsap(o, true);
  natsConnection* nc;
  CHECK("connect", natsConnection_Connect(&nc, o));
  jsCtx* js;
  CHECK("js", natsConnection_JetStream(&js, nc, nullptr));
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = "REACT_LEASES";
  kc.History = 1;
  kvStore* kv;
  if (js_KeyValue(&kv, js, "REACT_LEASES") != NATS_OK)
    CHECK("bucket", js_CreateKeyValue(&kv, js, &kc));
  std::string key = "p." + std::to_string(p);

  if (mode == "hold") {
    lease l{me, "", 1, 199000};
    uint64_t rev = 0;
    kvEntry* e = nullptr;
    if (kvStore_Get(&e, kv, key.c_str()) == NATS_OK) {
      lease old = parse(kvEntry_ValueString(e), kvEntry_ValueLen(e));
      l.epoch = old.epoch + 1;
      l.checkpoint = old.checkpoint;
      if (!old.consumer.empty())
        js_DeleteConsumer(js, stream, old.consumer.c_str(), nullptr, nullptr);
      l.consumer = make_consumer(js, stream, p, l.epoch, l.checkpoint + 1, me.c_str());
      CHECK("acquire",
            kvStore_UpdateString(&rev, kv, key.c_str(), value(l).c_str(), kvEntry_Revision(e)));
      kvEntry_Destroy(e);
    } else {
      l.consumer = make_consumer(js, stream, p, l.epoch, l.checkpoint + 1, me.c_str());
      CHECK("acquire", kvStore_CreateString(&rev, kv, key.c_str(), value(l).c_str()));
    }
    std::printf("%s holds p%d epoch %llu rev %llu consumer %s\n", me.c_str(), p,
                (unsigned long long)l.epoch, (unsigned long long)rev, l.consumer.c_str());
    std::fflush(stdout);
    auto last_ok = clk::now();
    for (;;) {
      std::this_thread::sleep_for(L / 3);
      // Self-fence: no successful renewal for L - margin => stop handling (not modelled further).
      if (clk::now() - last_ok > L - L / 6)
        std::printf("%s: lease p%d older than L-L/6 by my clock: stop handling\n", me.c_str(), p);
      uint64_t nrev = 0;
      ++l.checkpoint;  // pretend progress
      natsStatus s = kvStore_UpdateString(&nrev, kv, key.c_str(), value(l).c_str(), rev);
      if (s != NATS_OK) {
        std::printf("%s: renewal of p%d refused (%s): fenced; ", me.c_str(), p,
                    nats_GetLastError(nullptr));
        uint64_t seq = 0;
        std::string st = pull_one(nc, stream, l.consumer, seq);
        std::printf("a pull on my old consumer answers '%s'\n",
                    st.empty() ? "a message!" : st.c_str());
        std::fflush(stdout);
        return 3;
      }
      rev = nrev;
      last_ok = clk::now();
    }
  }
  // take: observe, expire by my clock, CAS, replace the consumer, first event
  kvWatcher* w;
  CHECK("watch", kvStore_Watch(&w, kv, key.c_str(), nullptr));
  uint64_t seen_rev = 0;
  auto seen_at = clk::now();
  lease seen;
  for (;;) {
    kvEntry* e = nullptr;
    natsStatus s = kvWatcher_Next(&e, w, 5);
    if (s == NATS_OK && e != nullptr) {
      if (kvEntry_Revision(e) != seen_rev) {
        seen_rev = kvEntry_Revision(e);
        seen_at = clk::now();
        seen = parse(kvEntry_ValueString(e), kvEntry_ValueLen(e));
      }
      kvEntry_Destroy(e);
    }
    if (seen_rev != 0 && clk::now() - seen_at >= L) break;
  }
  long long t_expired = now_ns();
  lease l{me, "", seen.epoch + 1, seen.checkpoint};
  l.consumer = std::string("react-p") + std::to_string(p) + "-e" + std::to_string(l.epoch);
  uint64_t rev = 0;
  CHECK("take over (CAS)", kvStore_UpdateString(&rev, kv, key.c_str(), value(l).c_str(), seen_rev));
  long long t_cas = now_ns();
  // The old tenure's consumer goes first: the old holder can pull nothing more, and its acks
  // name a consumer that no longer exists.
  js_DeleteConsumer(js, stream, seen.consumer.c_str(), nullptr, nullptr);
  make_consumer(js, stream, p, l.epoch, l.checkpoint + 1, me.c_str());
  long long t_consumer = now_ns();
  uint64_t sseq = 0;
  std::string st = pull_one(nc, stream, l.consumer, sseq);
  long long t_first = now_ns();
  std::printf(
      "TAKEOVER expired_seen_ns=%lld cas_ns=%lld consumer_ns=%lld first_ns=%lld first_seq=%llu "
      "status='%s' epoch=%llu\n",
      t_expired, t_cas, t_consumer, t_first, (unsigned long long)sseq, st.c_str(),
      (unsigned long long)l.epoch);
  kvWatcher_Destroy(w);
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return 0;
}
