// Prototype for ADR 0014: does nats-server 2.9.10 accept a durable pull consumer with
// AckPolicy None (and deliver with a numbered reply subject), and does it delete an idle durable
// pull consumer after its InactiveThreshold? Needs stream X16 (react_probe fill).
// g++ -std=c++20 -O1 consumer_flags.cpp -lnats -o consumer_flags && ./consumer_flags URL
#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  natsConnection* nc = nullptr;
  if (natsConnection_ConnectTo(&nc, argv[1]) != NATS_OK) return 1;
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, nc, nullptr);
  jsErrCode jerr = static_cast<jsErrCode>(0);

  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = "acknone-probe";
  cc.AckPolicy = js_AckNone;
  jsConsumerInfo* ci = nullptr;
  natsStatus s = js_AddConsumer(&ci, js, "X16", &cc, nullptr, &jerr);
  std::printf("AckNone pull durable: %s\n", natsStatus_GetText(s));
  jsConsumerInfo_Destroy(ci);
  natsSubscription* sub = nullptr;
  natsConnection_SubscribeSync(&sub, nc, "_CF.1");
  natsConnection_PublishRequestString(nc, "$JS.API.CONSUMER.MSG.NEXT.X16.acknone-probe", "_CF.1",
                                      "{\"batch\":3,\"expires\":500000000}");
  for (int i = 0; i < 3; ++i) {
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK) break;
    std::printf("  %s reply=%s\n", natsMsg_GetSubject(m), natsMsg_GetReply(m));
    natsMsg_Destroy(m);
  }
  natsSubscription_Destroy(sub);
  ci = nullptr;
  if (js_GetConsumerInfo(&ci, js, "X16", "acknone-probe", nullptr, &jerr) == NATS_OK)
    std::printf("  ack pending %lld, num pending %llu\n", static_cast<long long>(ci->NumAckPending),
                static_cast<unsigned long long>(ci->NumPending));
  jsConsumerInfo_Destroy(ci);
  js_DeleteConsumer(js, "X16", "acknone-probe", nullptr, nullptr);

  jsConsumerConfig_Init(&cc);
  cc.Durable = "inactive-probe";
  cc.AckPolicy = js_AckAll;
  cc.InactiveThreshold = 2000000000LL;  // 2 s
  ci = nullptr;
  s = js_AddConsumer(&ci, js, "X16", &cc, nullptr, &jerr);
  std::printf("durable with InactiveThreshold 2 s: %s\n", natsStatus_GetText(s));
  jsConsumerInfo_Destroy(ci);
  for (int i = 1; i <= 5; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ci = nullptr;
    s = js_GetConsumerInfo(&ci, js, "X16", "inactive-probe", nullptr, &jerr);
    std::printf("  after %d s without pulls: %s\n", i, s == NATS_OK ? "exists" : "gone");
    jsConsumerInfo_Destroy(ci);
  }
  js_DeleteConsumer(js, "X16", "inactive-probe", nullptr, nullptr);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return 0;
}
