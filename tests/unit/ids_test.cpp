// Identifiers on the wire: subject-token validation, the FNV-1a partition hash, commit ids.
#include <jetsource/event_store.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

using jetsource::errc;

TEST(ValidateTokenTest, AcceptsSubjectSafeTokens) {
  for (std::string_view token : {"ord-42", "a_b", "ABC123", "x:y@z", "ordre-\xC3\xA9", "a", "0",
                                 "-", "Order", "a/b", "a+b=c", "\xE6\x97\xA5\xE6\x9C\xAC", "~"}) {
    SCOPED_TRACE(token);
    auto r = jetsource::validate_token("aggregate id", token);
    EXPECT_TRUE(r) << r.error();
  }
}

TEST(ValidateTokenTest, AcceptsUpTo256Bytes) {
  const std::string longest(256, 'x');
  auto r = jetsource::validate_token("aggregate id", longest);
  EXPECT_TRUE(r) << r.error();
}

TEST(ValidateTokenTest, RejectsWhatIsNotASingleSubjectToken) {
  const std::string too_long(257, 'x');
  const std::string_view bad[] = {"",
                                  "a.b",
                                  ".",
                                  "a.",
                                  ".a",
                                  "a*",
                                  "*",
                                  ">",
                                  "a>",
                                  "a b",
                                  " ",
                                  "a ",
                                  "a\tb",
                                  "a\nb",
                                  "a\r",
                                  "\x01",
                                  "a\x1f",
                                  "\x7f",
                                  "a\vb",
                                  "a\fb",
                                  too_long,
                                  std::string_view("a\0b", 3),
                                  std::string_view("\0", 1)};
  for (std::string_view token : bad) {
    SCOPED_TRACE(testing::Message() << "token of " << token.size() << " bytes: [" << token << "]");
    auto r = jetsource::validate_token("aggregate id", token);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(errc::invalid_id)) << r.error();
    EXPECT_NE(r.error().message.find("aggregate id"), std::string::npos) << r.error();
  }
}

TEST(ValidateTokenTest, MessageNamesTheToken) {
  struct named {
    std::string_view token;
    std::string_view shown;  // how the message shows it
  };
  const std::string too_long = std::string(200, 'y') + std::string(57, 'z');
  for (const named& n :
       {named{"a.b", "'a.b'"}, named{"a*", "'a*'"}, named{">", "'>'"}, named{"a b", "'a b'"},
        named{"a\tb", "a\\x09b"}, named{"a\nb", "a\\x0ab"}, named{"\x01", "\\x01"},
        named{"\x7f", "\\x7f"}, named{"", "''"}, named{too_long, "yyyyyyyyyy"}}) {
    SCOPED_TRACE(n.shown);
    auto r = jetsource::validate_token("aggregate type", n.token);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(errc::invalid_id)) << r.error();
    EXPECT_NE(r.error().message.find("aggregate type"), std::string::npos) << r.error();
    EXPECT_NE(r.error().message.find(n.shown), std::string::npos) << r.error();
  }
}

TEST(ValidateTokenTest, LongTokenMessageStaysShort) {
  const std::string huge(100'000, 'x');
  auto r = jetsource::validate_token("aggregate id", huge);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::invalid_id)) << r.error();
  EXPECT_LT(r.error().message.size(), 1'000u) << r.error();
}

TEST(Fnv1a32Test, KnownVectors) {
  EXPECT_EQ(jetsource::fnv1a32(""), 0x811c9dc5u);
  EXPECT_EQ(jetsource::fnv1a32("a"), 0xe40c292cu);
  EXPECT_EQ(jetsource::fnv1a32("b"), 0xe70c2de5u);
  EXPECT_EQ(jetsource::fnv1a32("foobar"), 0xbf9cf968u);
  EXPECT_EQ(jetsource::fnv1a32("ord-42"), 0xa7a47391u);
  // Bytes, not chars: a byte >= 0x80 must not be sign-extended.
  EXPECT_EQ(jetsource::fnv1a32("\xC3\xA9"), 0x1e9de8c1u);
}

TEST(Fnv1a32Test, HashesTheWholeStringViewIncludingNul) {
  EXPECT_NE(jetsource::fnv1a32(std::string_view("a\0b", 3)), jetsource::fnv1a32("a"));
  EXPECT_EQ(jetsource::fnv1a32(std::string_view("foobarbaz", 6)), 0xbf9cf968u);
}

bool is_id_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

TEST(CommitIdTest, TwentyTwoAlphanumericCharacters) {
  for (int i = 0; i < 1000; ++i) {
    const std::string id = jetsource::new_commit_id();
    ASSERT_EQ(id.size(), 22u) << id;
    for (char c : id) ASSERT_TRUE(is_id_char(c)) << "'" << c << "' in " << id;
    ASSERT_TRUE(jetsource::validate_token("commit id", id)) << id;
  }
}

TEST(CommitIdTest, TenThousandIdsAreDistinct) {
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    const std::string id = jetsource::new_commit_id();
    ASSERT_TRUE(seen.insert(id).second) << "duplicate commit id " << id << " after " << i;
  }
  // And they use the whole alphabet, not a few characters of it.
  std::set<char> used;
  for (const auto& id : seen) used.insert(id.begin(), id.end());
  EXPECT_EQ(used.size(), 62u);
}

TEST(CommitIdTest, DistinctAcrossThreads) {
  constexpr int threads = 4;
  constexpr int per_thread = 2'500;
  std::vector<std::vector<std::string>> ids(threads);
  {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&ids, t] {
        for (int i = 0; i < per_thread; ++i) ids[t].push_back(jetsource::new_commit_id());
      });
    for (auto& w : workers) w.join();
  }
  std::unordered_set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(threads * per_thread));
}

}  // namespace
