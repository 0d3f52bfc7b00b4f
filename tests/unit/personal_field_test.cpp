// personal<T> in the codec (no server): the field format, round trips, a wrong key, a tampered
// ciphertext, a forgotten subject's placeholder, and no key provider / an unreachable one.
#include <jetsource/event.hpp>
#include <jetsource/personal.hpp>

#include <jetsource/testing/projection_test.hpp>

#include <order_system/customer.hpp>
#include <order_system/order.hpp>
#include <order_system/read_models.hpp>

#include <gtest/gtest.h>
#include <sodium.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

using jetsource::errc;
using jetsource::personal;
using jetsource::detail::data_key;
using order_system::order_created;
using registry = jetsource::event_registry<order_system::order::event>;

// An in-memory key provider for this thread (what key_store does against the KV bucket).
class memory_keys final : public jetsource::detail::key_provider {
 public:
  memory_keys() : previous_(jetsource::detail::exchange_thread_key_provider(this)) {}
  ~memory_keys() override { jetsource::detail::exchange_thread_key_provider(previous_); }

  jetsource::result<data_key> key_for_write(std::string_view subject) override {
    if (down) return jetsource::make_error(errc::unreachable, "key store down");
    auto& k = keys_[std::string(subject)];
    if (!k) {
      k.emplace();
      randombytes_buf(k->data(), k->size());
    }
    return *k;
  }
  jetsource::result<std::optional<data_key>> key_for_read(std::string_view subject) override {
    if (down) return jetsource::make_error(errc::timeout, "key store slow");
    auto it = keys_.find(std::string(subject));
    if (it == keys_.end()) return std::optional<data_key>{};
    return it->second;
  }
  void forget(const std::string& subject) { keys_[subject].reset(); }
  std::optional<data_key>& key(const std::string& subject) { return keys_[subject]; }

  bool down = false;

 private:
  std::map<std::string, std::optional<data_key>> keys_;
  jetsource::detail::key_provider* previous_;
};

std::string encode(const order_created& e) {
  std::vector<order_system::order::event> v{e};
  auto body = registry::encode(v);
  EXPECT_TRUE(body) << body.error();
  return body ? *body : std::string{};
}

order_created decoded(const std::string& body) {
  auto events = registry::decode(body);
  EXPECT_TRUE(events) << events.error();
  if (!events) return {};
  return std::get<order_created>(events->at(0));
}

order_created ann() {
  return {"c-1", personal<std::string>("c-1", "Ann Example"),
          personal<std::string>("c-1", "ann@example.com")};
}

TEST(PersonalFieldTest, EncodedFieldIsTheDocumentedObjectWithoutThePlaintext) {
  memory_keys keys;
  auto body = encode(ann());
  EXPECT_EQ(body.find("Ann Example"), std::string::npos) << body;
  EXPECT_EQ(body.find("ann@example.com"), std::string::npos) << body;
  auto field = nlohmann::json::parse(body)["events"][0]["data"]["customer_name"];
  EXPECT_EQ(field["$pii"], 1);
  EXPECT_EQ(field["subject"], "c-1");
  // Decrypt as another language would (docs/wire-format.md): base64 nonce and ciphertext,
  // XChaCha20-Poly1305-IETF, associated data = the subject's bytes, plaintext {"value": ...}.
  std::vector<unsigned char> nonce(64), ct(256);
  std::size_t nonce_len = 0, ct_len = 0;
  auto n = field["nonce"].get<std::string>(), c = field["ct"].get<std::string>();
  ASSERT_EQ(sodium_base642bin(nonce.data(), nonce.size(), n.data(), n.size(), nullptr, &nonce_len,
                              nullptr, sodium_base64_VARIANT_ORIGINAL),
            0);
  ASSERT_EQ(sodium_base642bin(ct.data(), ct.size(), c.data(), c.size(), nullptr, &ct_len, nullptr,
                              sodium_base64_VARIANT_ORIGINAL),
            0);
  ASSERT_EQ(nonce_len, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  std::string plain(ct_len, '\0');
  unsigned long long plain_len = 0;
  const std::string aad = "c-1";
  ASSERT_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(
                reinterpret_cast<unsigned char*>(plain.data()), &plain_len, nullptr, ct.data(),
                ct_len, reinterpret_cast<const unsigned char*>(aad.data()), aad.size(),
                nonce.data(), keys.key("c-1")->data()),
            0);
  plain.resize(plain_len);
  EXPECT_EQ(plain, R"({"value":"Ann Example"})");
}

TEST(PersonalFieldTest, RoundTripsAndEachEncodingHasAFreshNonce) {
  memory_keys keys;
  auto body = encode(ann());
  auto e = decoded(body);
  EXPECT_EQ(e.customer_id, "c-1");
  EXPECT_EQ(e.customer_name.value(), "Ann Example");
  EXPECT_EQ(e.customer_email.value(), "ann@example.com");
  EXPECT_FALSE(e.customer_name.forgotten());
  EXPECT_NE(encode(ann()), body);  // same value, new nonce: equal values are not linkable
}

TEST(PersonalFieldTest, NoValueNeedsNoKey) {
  auto body = encode(order_created{"c-2", {}, {}});  // no provider at all: nothing to encrypt
  EXPECT_NE(body.find(R"("customer_name":{"$pii":1})"), std::string::npos) << body;
  auto e = decoded(body);
  EXPECT_FALSE(e.customer_name.has_value());
  EXPECT_FALSE(e.customer_name.forgotten());
}

TEST(PersonalFieldTest, AForgottenSubjectDecodesAsThePlaceholder) {
  memory_keys keys;
  auto body = encode(ann());
  keys.forget("c-1");
  auto e = decoded(body);
  EXPECT_EQ(e.customer_id, "c-1");  // everything else still decodes
  EXPECT_FALSE(e.customer_name.has_value());
  EXPECT_TRUE(e.customer_name.forgotten());
  EXPECT_TRUE(e.customer_email.forgotten());
  EXPECT_EQ(e.customer_name.value_or("?"), "?");
  // Re-encoded (a snapshot, a copy), the placeholder stays a placeholder.
  auto again = decoded(encode(e));
  EXPECT_TRUE(again.customer_name.forgotten());
}

TEST(PersonalFieldTest, AWrongKeyIsAClearDecodeError) {
  memory_keys keys;
  auto body = encode(ann());
  randombytes_buf(keys.key("c-1")->data(), 32);  // another key for the same subject
  auto events = registry::decode(body);
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error().code, errc::decode_failed);
  EXPECT_NE(events.error().message.find("does not authenticate"), std::string::npos)
      << events.error().message;
}

TEST(PersonalFieldTest, ATamperedCiphertextIsAClearDecodeError) {
  memory_keys keys;
  auto j = nlohmann::json::parse(encode(ann()));
  auto& ct = j["events"][0]["data"]["customer_email"]["ct"];
  auto text = ct.get<std::string>();
  text[3] = text[3] == 'A' ? 'B' : 'A';
  ct = text;
  auto events = registry::decode(j.dump());
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error().code, errc::decode_failed);
  EXPECT_NE(events.error().message.find("'c-1' does not authenticate"), std::string::npos)
      << events.error().message;
}

TEST(PersonalFieldTest, ACiphertextMovedToAnotherSubjectDoesNotDecrypt) {
  memory_keys keys;
  (void)keys.key_for_write("c-2");
  auto j = nlohmann::json::parse(encode(ann()));
  auto& field = j["events"][0]["data"]["customer_name"];
  *keys.key("c-2") = *keys.key("c-1");  // even with the same key: the subject is authenticated
  field["subject"] = "c-2";
  auto events = registry::decode(j.dump());
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error().code, errc::decode_failed);
}

TEST(PersonalFieldTest, AnUnreachableKeyStoreIsARetryableErrorNeverPlaintext) {
  memory_keys keys;
  auto body = encode(ann());
  keys.down = true;
  std::vector<order_system::order::event> v{ann()};
  auto enc = registry::encode(v);
  ASSERT_FALSE(enc);
  EXPECT_EQ(enc.error().code, errc::unreachable);
  auto dec = registry::decode(body);
  ASSERT_FALSE(dec);
  EXPECT_EQ(dec.error().code, errc::timeout);
}

TEST(PersonalFieldTest, WithoutAKeyProviderNothingIsEncoded) {
  std::vector<order_system::order::event> v{ann()};
  auto enc = registry::encode(v);
  ASSERT_FALSE(enc);
  EXPECT_NE(enc.error().message.find("key store"), std::string::npos) << enc.error().message;
}

TEST(PersonalFieldTest, OldOrderCreatedUpcastsWithoutPersonalData) {
  auto events = registry::decode(
      R"({"events":[{"type":"OrderCreated","v":1,"data":{"customer_id":"c-9"}}]})");
  ASSERT_TRUE(events) << events.error();
  const auto& e = std::get<order_created>(events->at(0));
  EXPECT_EQ(e.customer_id, "c-9");
  EXPECT_FALSE(e.customer_name.has_value());
  EXPECT_FALSE(e.customer_name.forgotten());
}

TEST(PersonalFieldTest, MalformedFieldsAreDecodeErrors) {
  memory_keys keys;
  ASSERT_TRUE(keys.key_for_write("c-1"));  // with no key, any ciphertext is just "forgotten"
  for (const char* field :
       {R"({"$pii":2})", R"({"$pii":1,"subject":"c-1","nonce":"!!","ct":"AA=="})",
        R"("plain text")"}) {
    auto body =
        std::string(
            R"({"events":[{"type":"OrderCreated","v":2,"data":{"customer_id":"c-1","customer_name":)") +
        field + R"(,"customer_email":{"$pii":1}}}]})";
    auto events = registry::decode(body);
    ASSERT_FALSE(events) << field;
    EXPECT_EQ(events.error().code, errc::decode_failed) << field << ": " << events.error().message;
  }
}

// The read model's side, through the projector's apply path: an outage is retried (the commit is
// not dead-lettered), the forget event nulls the data, and a rebuild after the forget never
// writes it (placeholders, no dead letters).
TEST(PersonalFieldTest, CustomerStatsRetriesOutagesAndForgets) {
  memory_keys keys;
  auto name_of = [](jetsource::testing::projection_test& t) {
    auto row = t.db().query_one("SELECT name, forgotten FROM customers WHERE customer_id = 'c-1'");
    EXPECT_TRUE(row && *row);
    return std::pair{(**row).get<std::optional<std::string>>(0), (**row).get<std::int64_t>(1)};
  };
  auto body = encode(ann());
  jetsource::testing::projection_test live(order_system::customer_stats());
  keys.down = true;
  auto r = live.apply_commit("Order", "o-1", "OrderCreated", body);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout) << r.error();
  EXPECT_TRUE(live.dead_letters().value().empty());  // retried later, not a dead letter
  keys.down = false;
  auto again = live.redeliver(1);  // the server delivers the unacked commit again
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(name_of(live).first, "Ann Example");

  keys.forget("c-1");
  ASSERT_TRUE(live.given("Customer", "c-1", order_system::customer_forgotten{"c-1"}));
  EXPECT_EQ(name_of(live), (std::pair{std::optional<std::string>{}, std::int64_t{1}}));

  jetsource::testing::projection_test rebuilt(order_system::customer_stats());
  ASSERT_TRUE(rebuilt.apply_commit("Order", "o-1", "OrderCreated", body));
  ASSERT_TRUE(rebuilt.given("Customer", "c-1", order_system::customer_forgotten{"c-1"}));
  EXPECT_EQ(name_of(rebuilt), name_of(live));
  EXPECT_TRUE(rebuilt.dead_letters().value().empty());
}

TEST(PersonalFieldTest, KeyNamesAreSubjectsOrHex) {
  EXPECT_EQ(jetsource::key_name_of("c-1_X"), "c-1_X");
  EXPECT_EQ(jetsource::key_name_of("a@b"), "h.614062");
  EXPECT_EQ(jetsource::key_name_of("é"), "h.c3a9");
}

}  // namespace
