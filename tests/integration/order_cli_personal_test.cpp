// order-system's crypto-shredding contract (issue 15 §3): --customer-name/--customer-email,
// `query customer --json` with "name", "email", "forgotten", and `customer forget`; afterwards
// no file of the data dir or of the server's store holds the name or e-mail in plaintext.
#include "order_cli_fixture.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

namespace jetsource::test {
namespace {

constexpr const char* ann_name = "Annabel Quixotewright";
constexpr const char* ann_email = "annabel.quixotewright@example.org";
constexpr const char* bob_name = "Bartholomew Zanzibarr";

// The files under `root` whose bytes contain `needle`.
std::vector<std::string> files_holding(const std::filesystem::path& root,
                                       const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& f : std::filesystem::recursive_directory_iterator(root)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (bytes.find(needle) != std::string::npos) found.push_back(f.path().string());
  }
  return found;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + " ";
  return out;
}

class order_cli_personal_test : public order_cli_test {
 protected:
  nlohmann::json customer(const std::string& id, bool forgotten) {
    return query_until({"query", "customer", id, "--json"},
                       [&](const nlohmann::json& j) { return j["forgotten"] == forgotten; });
  }
};

TEST_F(order_cli_personal_test, ForgetLeavesNoPlaintextInTheDataDirOrOnTheStream) {
  pid_t serve = spawn({"serve"}, server_->url());
  ASSERT_EQ(run({"order", "create", "--customer", "c-1", "--customer-name", "Ann Old", "--item",
                 "widget:1:100"})
                .code,
            0);
  auto created = run({"order", "create", "--customer", "c-1", "--customer-name", ann_name,
                      "--customer-email", ann_email});
  ASSERT_EQ(created.code, 0) << created.err;
  ASSERT_EQ(run({"order", "create", "--customer", "c-2", "--customer-name", bob_name}).code, 0);

  auto before = query_until({"query", "customer", "c-1", "--json"},
                            [](const nlohmann::json& j) { return j["orders_created"] == 2; });
  EXPECT_EQ(before["name"], ann_name);  // the latest given
  EXPECT_EQ(before["email"], ann_email);
  EXPECT_EQ(before["forgotten"], false);
  EXPECT_EQ(keys_of(before),  // sorted by nlohmann: the old keys and the three new ones
            (std::vector<std::string>{"customer_id", "email", "forgotten", "lifetime_value_cents",
                                      "name", "orders_cancelled", "orders_created", "orders_paid",
                                      "orders_placed", "orders_shipped"}));
  // The stream never held them in plaintext; the read model did (the grep can see them).
  EXPECT_TRUE(files_holding(dir_.path() / "nats", ann_email).empty());
  EXPECT_FALSE(files_holding(cli_dir(), ann_email).empty());

  auto forgot = run({"customer", "forget", "c-1"});
  EXPECT_EQ(forgot.code, 0) << forgot.err;
  EXPECT_EQ(run({"customer", "forget", "c-1"}).code, 0);  // already forgotten: still 0

  auto after = customer("c-1", true);
  EXPECT_TRUE(after["name"].is_null());
  EXPECT_TRUE(after["email"].is_null());
  EXPECT_EQ(after["orders_created"], 2);  // everything else is kept
  EXPECT_EQ(customer("c-2", false)["name"], bob_name);

  for (const std::string& secret :
       {std::string(ann_name), std::string(ann_email), std::string("Ann Old")}) {
    EXPECT_TRUE(files_holding(cli_dir(), secret).empty())
        << secret << " in " << joined(files_holding(cli_dir(), secret));
    EXPECT_TRUE(files_holding(dir_.path() / "nats", secret).empty())
        << secret << " in " << joined(files_holding(dir_.path() / "nats", secret));
  }
  EXPECT_FALSE(files_holding(cli_dir(), bob_name).empty());  // other customers untouched

  // New personal data of a forgotten customer is refused (exit 3); orders without it work.
  auto refused = run({"order", "create", "--customer", "c-1", "--customer-name", "Ann"});
  EXPECT_EQ(refused.code, 3) << refused.err;
  EXPECT_NE(refused.err.find("forgotten"), std::string::npos) << refused.err;
  EXPECT_EQ(run({"order", "create", "--customer", "c-1", "--item", "widget:1:100"}).code, 0);

  // A rebuild gives the same result and brings nothing back.
  auto rebuilt = run({"projections", "rebuild", "customer_stats"});
  ASSERT_EQ(rebuilt.code, 0) << rebuilt.err;
  auto again = query_until({"query", "customer", "c-1", "--json"},
                           [](const nlohmann::json& j) { return j["orders_created"] == 3; });
  EXPECT_TRUE(again["name"].is_null());
  EXPECT_EQ(again["forgotten"], true);
  EXPECT_EQ(customer("c-2", false)["name"], bob_name);
  stop(serve);
  for (const std::string& secret : {std::string(ann_name), std::string(ann_email)})
    EXPECT_TRUE(files_holding(cli_dir(), secret).empty())
        << secret << " in " << joined(files_holding(cli_dir(), secret));
}

TEST_F(order_cli_personal_test, ForgettingAnUnknownCustomerIsFineAndOldOrdersStillLoad) {
  ASSERT_EQ(run({"order", "create", "--customer", "c-1", "--order-id", "o-1"}).code, 0);
  auto r = run({"customer", "forget", "c-9", "--wait", "0"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(run({"order", "place", "o-1"}).code, 3);  // empty order: a rule, so it loaded
}

}  // namespace
}  // namespace jetsource::test
