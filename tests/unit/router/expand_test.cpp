#include "router/expand.h"

#include <map>
#include <set>

#include <catch2/catch.hpp>

using namespace wsmtp;
using router::FinalRecipient;

namespace {

class FakeDirectory : public common::DirectoryLookup {
 public:
  std::set<std::string> domains{"example.org"};
  std::map<std::string, std::string> mailboxes;  // address -> maildir
  std::multimap<std::string, std::string> aliases;
  int lookups = 0;

  bool is_local_domain(const std::string& d) override { return domains.count(d) > 0; }
  std::optional<common::MailboxTarget> find_mailbox(const std::string& a) override {
    ++lookups;
    auto it = mailboxes.find(a);
    if (it == mailboxes.end()) return std::nullopt;
    return common::MailboxTarget{a, it->second, "maildir"};
  }
  std::vector<std::string> alias_targets(const std::string& a) override {
    ++lookups;
    std::vector<std::string> out;
    auto [b, e] = aliases.equal_range(a);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
    return out;
  }
};

router::ExpansionLimits limits() { return {}; }

}  // namespace

TEST_CASE("mailboxes, aliases, remote and unknown recipients") {
  FakeDirectory dir;
  dir.mailboxes = {{"alice@example.org", "/m/alice"}, {"bob@example.org", "/m/bob"}};
  dir.aliases = {{"team@example.org", "alice@example.org"},
                 {"team@example.org", "Bob@Example.org"},
                 {"team@example.org", "carol@remote.example"}};

  CHECK(router::expand_recipient(dir, "Alice@EXAMPLE.org", limits()) ==
        std::vector<FinalRecipient>{{"alice@example.org", "maildir", "/m/alice", ""}});
  CHECK(router::expand_recipient(dir, "team@example.org", limits()) ==
        std::vector<FinalRecipient>{{"alice@example.org", "maildir", "/m/alice", ""},
                                    {"bob@example.org", "maildir", "/m/bob", ""},
                                    {"carol@remote.example", "relay", "default", ""}});
  auto unknown = router::expand_recipient(dir, "nobody@example.org", limits());
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].transport == router::kBounceTransport);
  CHECK(unknown[0].bounce_reason.rfind("5.1.1", 0) == 0);
}

TEST_CASE("alias loops and depth are bounded and bounce") {
  FakeDirectory dir;
  dir.aliases = {{"a@example.org", "b@example.org"}, {"b@example.org", "a@example.org"}};
  auto loop = router::expand_recipient(dir, "a@example.org", limits());
  REQUIRE(loop.size() == 1);
  CHECK(loop[0].transport == router::kBounceTransport);
  CHECK(loop[0].bounce_reason.find("loop") != std::string::npos);
  CHECK(dir.lookups < 20);

  FakeDirectory deep;
  for (int i = 0; i < 30; ++i)
    deep.aliases.insert({"l" + std::to_string(i) + "@example.org", "l" + std::to_string(i + 1) + "@example.org"});
  auto r = router::expand_recipient(deep, "l0@example.org", limits());
  REQUIRE(r.size() == 1);
  CHECK(r[0].bounce_reason.find("too deep") != std::string::npos);
}

TEST_CASE("an alias naming itself keeps a copy in its own mailbox; duplicates collapse") {
  FakeDirectory dir;
  dir.mailboxes = {{"joe@example.org", "/m/joe"}, {"boss@example.org", "/m/boss"}};
  dir.aliases = {{"joe@example.org", "joe@example.org"},
                 {"joe@example.org", "boss@example.org"},
                 {"joe@example.org", "boss@example.org "}};  // odd target: bad syntax bounces, no crash
  auto r = router::expand_recipient(dir, "joe@example.org", limits());
  std::set<std::string> maildirs;
  for (const auto& f : r)
    if (f.transport == "maildir") maildirs.insert(f.destination);
  CHECK(maildirs == std::set<std::string>{"/m/joe", "/m/boss"});

  FakeDirectory diamond;
  diamond.mailboxes = {{"x@example.org", "/m/x"}};
  diamond.aliases = {{"all@example.org", "g1@example.org"}, {"all@example.org", "g2@example.org"},
                     {"g1@example.org", "x@example.org"},   {"g2@example.org", "x@example.org"}};
  CHECK(router::expand_recipient(diamond, "all@example.org", limits()).size() == 1);
}
