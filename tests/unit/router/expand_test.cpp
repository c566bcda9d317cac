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
  std::map<std::string, std::string> delimiters;  // domain -> delimiter (default "+")
  std::map<std::string, std::string> mailboxes;   // address -> maildir
  std::map<std::string, std::string> transports;  // address -> transport (default maildir)
  std::multimap<std::string, std::string> aliases;
  std::map<std::string, std::string> catchalls;
  std::multimap<std::string, std::string> forwards;
  std::set<std::string> keep_copy, autoreplies;
  std::map<std::string, common::MailingList> lists;
  std::multimap<std::string, std::string> members;
  int lookups = 0;

  bool is_local_domain(const std::string& d) override { return domains.count(d) > 0; }
  std::optional<common::MailboxTarget> find_mailbox(const std::string& a) override {
    ++lookups;
    auto it = mailboxes.find(a);
    if (it == mailboxes.end()) return std::nullopt;
    return common::MailboxTarget{a, it->second, transports.count(a) ? transports[a] : "maildir"};
  }
  std::vector<std::string> alias_targets(const std::string& a) override { return values(aliases, a); }
  std::string recipient_delimiter(const std::string& d) override { return delimiters.count(d) ? delimiters[d] : "+"; }
  std::optional<std::string> catchall_target(const std::string& d) override {
    if (!catchalls.count(d)) return std::nullopt;
    return catchalls[d];
  }
  std::vector<std::string> forward_targets(const std::string& m, bool& keep) override {
    keep = keep_copy.count(m) > 0;
    return values(forwards, m);
  }
  bool autoreply_active(const std::string& m) override { return autoreplies.count(m) > 0; }
  std::optional<common::MailingList> find_list(const std::string& a) override {
    if (!lists.count(a)) return std::nullopt;
    return lists[a];
  }
  bool is_list_member(const std::string& l, const std::string& a) override {
    for (const auto& m : values(members, l))
      if (m == a) return true;
    return false;
  }
  // Like the database: plain mailboxes and remote members are fanned out in
  // bulk.
  std::vector<std::string> list_members_to_expand(const std::string& l) override {
    std::vector<std::string> out;
    for (const auto& m : values(members, l)) {
      auto domain = m.substr(m.rfind('@') + 1);
      bool plain_mailbox = mailboxes.count(m) && !forwards.count(m);
      if (!plain_mailbox && domains.count(domain)) out.push_back(m);
    }
    return out;
  }

 private:
  std::vector<std::string> values(const std::multimap<std::string, std::string>& map, const std::string& key) {
    ++lookups;
    std::vector<std::string> out;
    auto [b, e] = map.equal_range(key);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
    return out;
  }
};

struct Message {
  common::mail::HeaderBlock headers;
  int header_reads = 0;
  router::MessageContext context(const std::string& from = "sender@remote.example") {
    return {from, [this]() -> const common::mail::HeaderBlock& {
              ++header_reads;
              return headers;
            }};
  }
};

router::ExpansionLimits limits() { return {}; }

FinalRecipient fr(const std::string& address, const std::string& transport, const std::string& destination) {
  FinalRecipient r;
  r.address = address;
  r.transport = transport;
  r.destination = destination;
  return r;
}

std::vector<FinalRecipient> expand(FakeDirectory& dir, const std::string& rcpt,
                                   const std::string& from = "s@r.example") {
  Message m;
  return router::expand_recipient(dir, rcpt, m.context(from), limits()).recipients;
}

common::MailingList list(common::PostingPolicy policy) {
  return {
      "team@example.org", "boss@example.org", "team-bounces@example.org", policy, "team.example.org", "The team", ""};
}

}  // namespace

TEST_CASE("mailboxes, aliases, remote and unknown recipients") {
  FakeDirectory dir;
  dir.mailboxes = {{"alice@example.org", "/m/alice"}, {"bob@example.org", "/m/bob"}};
  dir.aliases = {{"team@example.org", "alice@example.org"},
                 {"team@example.org", "Bob@Example.org"},
                 {"team@example.org", "carol@remote.example"}};

  CHECK(expand(dir, "Alice@EXAMPLE.org") ==
        std::vector<FinalRecipient>{fr("alice@example.org", "maildir", "/m/alice")});
  CHECK(expand(dir, "team@example.org") == std::vector<FinalRecipient>{fr("alice@example.org", "maildir", "/m/alice"),
                                                                       fr("bob@example.org", "maildir", "/m/bob"),
                                                                       fr("carol@remote.example", "relay", "default")});
  auto unknown = expand(dir, "nobody@example.org");
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].transport == router::kBounceTransport);
  CHECK(unknown[0].bounce_reason.rfind("5.1.1", 0) == 0);
  CHECK(expand(dir, "x@[192.0.2.1]")[0].transport == router::kBounceTransport);
}

TEST_CASE("an mbox mailbox routes to its spool with its transport tag") {
  FakeDirectory dir;
  dir.mailboxes = {{"unix@example.org", "/var/mail/unix"}, {"far@example.org", "/srv/m/far"}};
  dir.transports = {{"unix@example.org", "mbox"}, {"far@example.org", "maildir:host2"}};
  CHECK(expand(dir, "unix@example.org") ==
        std::vector<FinalRecipient>{fr("unix@example.org", "mbox", "/var/mail/unix")});
  CHECK(expand(dir, "far@example.org")[0].transport == "maildir:host2");
}

TEST_CASE("alias loops and depth are bounded and bounce") {
  FakeDirectory dir;
  dir.aliases = {{"a@example.org", "b@example.org"}, {"b@example.org", "a@example.org"}};
  auto loop = expand(dir, "a@example.org");
  REQUIRE(loop.size() == 1);
  CHECK(loop[0].transport == router::kBounceTransport);
  CHECK(loop[0].bounce_reason.find("loop") != std::string::npos);
  CHECK(dir.lookups < 40);

  FakeDirectory deep;
  for (int i = 0; i < 30; ++i)
    deep.aliases.insert({"l" + std::to_string(i) + "@example.org", "l" + std::to_string(i + 1) + "@example.org"});
  auto r = expand(deep, "l0@example.org");
  REQUIRE(r.size() == 1);
  CHECK(r[0].bounce_reason.find("too deep") != std::string::npos);
}

TEST_CASE(
    "an alias naming itself keeps a copy in its own mailbox; duplicates "
    "collapse") {
  FakeDirectory dir;
  dir.mailboxes = {{"joe@example.org", "/m/joe"}, {"boss@example.org", "/m/boss"}};
  dir.aliases = {{"joe@example.org", "joe@example.org"},
                 {"joe@example.org", "boss@example.org"},
                 {"joe@example.org", "boss@example.org "}};  // odd target: bad syntax bounces, no crash
  std::set<std::string> maildirs;
  for (const auto& f : expand(dir, "joe@example.org"))
    if (f.transport == "maildir") maildirs.insert(f.destination);
  CHECK(maildirs == std::set<std::string>{"/m/joe", "/m/boss"});

  FakeDirectory diamond;
  diamond.mailboxes = {{"x@example.org", "/m/x"}};
  diamond.aliases = {{"all@example.org", "g1@example.org"},
                     {"all@example.org", "g2@example.org"},
                     {"g1@example.org", "x@example.org"},
                     {"g2@example.org", "x@example.org"}};
  CHECK(expand(diamond, "all@example.org").size() == 1);
}

TEST_CASE("plus-addressing strips the tag with the domain's delimiter") {
  FakeDirectory dir;
  dir.domains.insert("dash.example");
  dir.delimiters = {{"dash.example", "-"}};
  dir.mailboxes = {{"ann@example.org", "/m/ann"}, {"ann+exact@example.org", "/m/exact"}, {"bo@dash.example", "/m/bo"}};
  dir.aliases = {{"sales@example.org", "ann@example.org"}};
  CHECK(expand(dir, "ann+news@example.org") == std::vector<FinalRecipient>{fr("ann@example.org", "maildir", "/m/ann")});
  CHECK(expand(dir, "ann+a+b@example.org")[0].destination == "/m/ann");
  CHECK(expand(dir, "ann+exact@example.org")[0].destination == "/m/exact");  // an explicit mailbox wins
  CHECK(expand(dir, "sales+q3@example.org")[0].destination == "/m/ann");     // aliases take tags too
  CHECK(expand(dir, "bo-x@dash.example")[0].destination == "/m/bo");
  CHECK(expand(dir, "bo+x@dash.example")[0].transport == router::kBounceTransport);
  CHECK(expand(dir, "+x@example.org")[0].transport == router::kBounceTransport);  // no base name
  dir.delimiters["example.org"] = "";
  CHECK(expand(dir, "ann+news@example.org")[0].transport == router::kBounceTransport);
}

TEST_CASE("a catch-all takes addresses that match nothing else") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}, {"postmaster@example.org", "/m/pm"}};
  dir.catchalls = {{"example.org", "postmaster@example.org"}};
  CHECK(expand(dir, "whoever@example.org") ==
        std::vector<FinalRecipient>{fr("postmaster@example.org", "maildir", "/m/pm")});
  CHECK(expand(dir, "ann@example.org")[0].destination == "/m/ann");
  CHECK(expand(dir, "ann+tag@example.org")[0].destination == "/m/ann");  // plus-addressing comes first
  dir.catchalls = {{"example.org", "gone@example.org"}};                 // a catch-all to nowhere bounces once
  auto r = expand(dir, "x@example.org");
  REQUIRE(r.size() == 1);
  CHECK(r[0].transport == router::kBounceTransport);
}

TEST_CASE(
    "forwarding sends a mailbox's mail on, with an optional kept copy; "
    "loops end in a mailbox") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}, {"bo@example.org", "/m/bo"}};
  dir.forwards = {{"ann@example.org", "ann@elsewhere.example"}};
  CHECK(expand(dir, "ann@example.org") == std::vector<FinalRecipient>{fr("ann@elsewhere.example", "relay", "default")});
  dir.keep_copy.insert("ann@example.org");
  CHECK(expand(dir, "ann@example.org").size() == 2);

  dir.forwards = {{"ann@example.org", "bo@example.org"}, {"bo@example.org", "ann@example.org"}};
  dir.keep_copy.clear();
  auto r = expand(dir, "ann@example.org");
  REQUIRE(r.size() == 1);
  CHECK(r[0].destination == "/m/ann");
}

TEST_CASE(
    "a list fans out with its headers and bounce address, by its posting "
    "policy") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}, {"boss@example.org", "/m/boss"}, {"cy@example.org", "/m/cy"}};
  dir.aliases = {{"helpers@example.org", "cy@example.org"}};
  dir.lists = {{"team@example.org", list(common::PostingPolicy::anyone)}};
  dir.members = {{"team@example.org", "ann@example.org"},
                 {"team@example.org", "far@remote.example"},
                 {"team@example.org", "helpers@example.org"}};
  Message m;
  auto e = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
  REQUIRE(e.lists.size() == 1);
  CHECK(e.lists[0].list_address == "team@example.org");
  CHECK(e.lists[0].envelope_from == "team-bounces@example.org");
  CHECK(e.lists[0].prepend_headers.find("List-Id: The team <team.example.org>\r\n") != std::string::npos);
  CHECK(e.lists[0].prepend_headers.find("List-Post: <mailto:team@example.org>\r\n") != std::string::npos);
  CHECK(e.lists[0].prepend_headers.find("X-Loop: team@example.org\r\n") != std::string::npos);
  // Only the alias member is expanded here; the database fans out the rest.
  REQUIRE(e.recipients.size() == 1);
  CHECK(e.recipients[0].destination == "/m/cy");
  CHECK(e.recipients[0].envelope_from == std::optional<std::string>("team-bounces@example.org"));
  CHECK(e.recipients[0].prepend_headers == e.lists[0].prepend_headers);

  SECTION("members only") {
    dir.lists["team@example.org"].policy = common::PostingPolicy::members;
    auto outsider = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
    REQUIRE(outsider.recipients.size() == 1);
    CHECK(outsider.recipients[0].bounce_reason.rfind("5.7.2", 0) == 0);
    CHECK(outsider.lists.empty());
    CHECK(router::expand_recipient(dir, "team@example.org", m.context("ann@example.org"), limits()).lists.size() == 1);
    CHECK(router::expand_recipient(dir, "team@example.org", m.context(""), limits()).lists.empty());
  }
  SECTION("moderated: posts go to the owner, the owner's go out") {
    dir.lists["team@example.org"].policy = common::PostingPolicy::moderated;
    auto post = router::expand_recipient(dir, "team@example.org", m.context("ann@example.org"), limits());
    CHECK(post.lists.empty());
    CHECK(post.recipients == std::vector<FinalRecipient>{fr("boss@example.org", "maildir", "/m/boss")});
    CHECK(router::expand_recipient(dir, "team@example.org", m.context("boss@example.org"), limits()).lists.size() == 1);
  }
  SECTION("X-Loop: the list's own mail never expands again") {
    m.headers = common::mail::HeaderBlock::parse("X-Loop: team@example.org\r\nSubject: hi\r\n\r\n");
    auto looped = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
    CHECK(looped.lists.empty());
    REQUIRE(looped.recipients.size() == 1);
    CHECK(looped.recipients[0].bounce_reason.find("X-Loop") != std::string::npos);
  }
}

TEST_CASE(
    "headers are read only when a rule needs them; auto-reply candidates "
    "are direct mailboxes") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}};
  dir.autoreplies = {"ann@example.org"};
  dir.lists = {{"team@example.org", list(common::PostingPolicy::anyone)}};
  dir.members = {{"team@example.org", "ann@example.org"}};
  Message m;
  auto direct = router::expand_recipient(dir, "ann@example.org", m.context(), limits());
  CHECK(m.header_reads == 0);
  CHECK(direct.autoreply_mailboxes == std::vector<std::string>{"ann@example.org"});
  auto via_list = router::expand_recipient(dir, "team@example.org", m.context(), limits());
  CHECK(m.header_reads == 1);
  CHECK(via_list.autoreply_mailboxes.empty());
}

TEST_CASE("list headers follow RFC 2369 and RFC 2919") {
  auto l = list(common::PostingPolicy::members);
  l.description = "";
  l.unsubscribe = "<https://example.org/u>";
  CHECK(router::list_headers(l) ==
        "List-Id: <team.example.org>\r\n"
        "List-Post: <mailto:team@example.org>\r\n"
        "List-Unsubscribe: <https://example.org/u>\r\n"
        "List-Owner: <mailto:boss@example.org>\r\n"
        "Precedence: list\r\n"
        "X-Loop: team@example.org\r\n");
}
