#include "router/expand.h"
#include "router/plan.h"

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
    return list_members(l, 1000000).to_expand;
  }
  common::ListMembers list_members(const std::string& l, std::int64_t limit) override {
    ++member_scans;
    common::ListMembers out;
    for (const auto& m : values(members, l)) {
      if (out.total() > limit) break;  // like the database: at most limit + 1 looked at
      auto domain = m.substr(m.rfind('@') + 1);
      bool plain_mailbox = mailboxes.count(m) && !forwards.count(m);
      if (!plain_mailbox && domains.count(domain))
        out.to_expand.push_back(m);
      else
        ++out.bulk;
    }
    return out;
  }
  int member_scans = 0;

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

TEST_CASE("a list with no members, or none deliverable, bounces to the poster") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}};
  dir.lists = {{"team@example.org", list(common::PostingPolicy::anyone)}};
  Message m;
  auto empty = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
  CHECK(empty.lists.empty());
  REQUIRE(empty.recipients.size() == 1);
  CHECK(empty.recipients[0].address == "team@example.org");
  CHECK(empty.recipients[0].transport == router::kBounceTransport);
  CHECK(empty.recipients[0].bounce_reason == "5.2.4 mailing list has no members");
  CHECK_FALSE(empty.recipients[0].envelope_from.has_value());  // reported to the poster

  // Members that all fail: each is reported to the list's bounce address, and
  // the poster learns that the list delivered to nobody.
  dir.members = {{"team@example.org", "gone@example.org"}, {"team@example.org", "old@example.org"}};
  auto none = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
  CHECK(none.lists.empty());
  std::map<std::string, FinalRecipient> by_address;
  for (const auto& r : none.recipients) by_address[r.address] = r;
  REQUIRE(by_address.size() == 3);
  for (const char* member : {"gone@example.org", "old@example.org"}) {
    CHECK(by_address[member].bounce_reason.rfind("5.1.1", 0) == 0);
    CHECK(by_address[member].envelope_from == std::optional<std::string>("team-bounces@example.org"));
  }
  CHECK(by_address["team@example.org"].bounce_reason == "5.2.4 mailing list has no deliverable members");
  CHECK_FALSE(by_address["team@example.org"].envelope_from.has_value());

  // One deliverable member is enough: no bounce for the list itself.
  dir.members.insert({"team@example.org", "ann@example.org"});
  auto some = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
  CHECK(some.lists.size() == 1);
  for (const auto& r : some.recipients) CHECK(r.address != "team@example.org");
}

TEST_CASE("bounces inside a list's fan-out go to the list's bounce address") {
  FakeDirectory dir;
  dir.mailboxes = {{"ann@example.org", "/m/ann"}};
  dir.aliases = {{"a@example.org", "b@example.org"}, {"b@example.org", "a@example.org"}};
  dir.lists = {{"team@example.org", list(common::PostingPolicy::anyone)},
               {"inner@example.org", list(common::PostingPolicy::anyone)}};
  dir.lists["inner@example.org"].address = "inner@example.org";
  dir.lists["inner@example.org"].bounce_address = "inner-bounces@example.org";
  dir.members = {{"team@example.org", "ann@example.org"},
                 {"team@example.org", "a@example.org"},  // an alias loop under a member
                 {"team@example.org", "nobody@example.org"},
                 {"team@example.org", "inner@example.org"},
                 {"inner@example.org", "lost@example.org"}};
  Message m;
  auto e = router::expand_recipient(dir, "nobody@example.org", m.context("x@remote.example"), limits());
  REQUIRE(e.recipients.size() == 1);
  CHECK_FALSE(e.recipients[0].envelope_from.has_value());  // addressed directly: the poster's bounce

  e = router::expand_recipient(dir, "team@example.org", m.context("x@remote.example"), limits());
  std::map<std::string, FinalRecipient> by_address;
  for (const auto& r : e.recipients) by_address[r.address] = r;
  CHECK(by_address["a@example.org"].bounce_reason.find("loop") != std::string::npos);
  CHECK(by_address["a@example.org"].envelope_from == std::optional<std::string>("team-bounces@example.org"));
  CHECK(by_address["nobody@example.org"].bounce_reason.rfind("5.1.1", 0) == 0);
  CHECK(by_address["nobody@example.org"].envelope_from == std::optional<std::string>("team-bounces@example.org"));
  // The nested list's own member reports to the nested list; the nested list
  // having nobody to deliver to is reported to the list that contains it.
  CHECK(by_address["lost@example.org"].envelope_from == std::optional<std::string>("inner-bounces@example.org"));
  CHECK(by_address["inner@example.org"].bounce_reason == "5.2.4 mailing list has no deliverable members");
  CHECK(by_address["inner@example.org"].envelope_from == std::optional<std::string>("team-bounces@example.org"));
  CHECK(e.lists.size() == 1);  // team: ann is delivered by the bulk fan-out
}

TEST_CASE("list fan-out is bounded by max_list_members for the whole message") {
  FakeDirectory dir;
  dir.lists = {{"team@example.org", list(common::PostingPolicy::anyone)},
               {"more@example.org", list(common::PostingPolicy::anyone)}};
  dir.lists["more@example.org"].address = "more@example.org";
  for (int i = 0; i < 3; ++i) {
    dir.members.insert({"team@example.org", "t" + std::to_string(i) + "@remote.example"});
    dir.members.insert({"more@example.org", "m" + std::to_string(i) + "@remote.example"});
  }
  router::ExpansionLimits small;
  small.max_list_members = 5;
  Message m;
  router::ExpansionBudget budget;
  auto first = router::expand_recipient(dir, "team@example.org", m.context(), small, budget);
  CHECK(first.lists.size() == 1);
  CHECK(budget.list_members == 3);
  auto second = router::expand_recipient(dir, "more@example.org", m.context(), small, budget);
  CHECK(second.lists.empty());
  REQUIRE(second.recipients.size() == 1);
  CHECK(second.recipients[0].bounce_reason.rfind("5.2.4 mailing list too large", 0) == 0);
  REQUIRE(second.warnings.size() == 1);
  CHECK(second.warnings[0].find("max_list_members") != std::string::npos);
  // The same list reached again in the message is not counted (or fanned out) twice.
  auto again = router::expand_recipient(dir, "team@example.org", m.context(), small, budget);
  CHECK(again.recipients.empty());
  CHECK(budget.list_members == 3);

  // A list larger than the limit on its own is refused after looking at no more
  // than limit + 1 members.
  small.max_list_members = 2;
  auto big = router::expand_recipient(dir, "team@example.org", m.context(), small);
  CHECK(big.lists.empty());
  CHECK(big.recipients.at(0).bounce_reason.rfind("5.2.4", 0) == 0);
}

TEST_CASE("alias expansion counts toward max_expansion; past it the recipient bounces as a whole") {
  // Each level names the next level's ten aliases: 10^6 paths to one mailbox.
  // Without a visit budget the deduplicated result stays tiny while the work
  // explodes.
  FakeDirectory dir;
  dir.mailboxes = {{"end@example.org", "/m/end"}};
  for (int level = 0; level < 6; ++level)
    for (int i = 0; i < 10; ++i)
      for (int j = 0; j < 10; ++j)
        dir.aliases.insert({"l" + std::to_string(level) + "x" + std::to_string(i) + "@example.org",
                            level == 5 ? "end@example.org"
                                       : "l" + std::to_string(level + 1) + "x" + std::to_string(j) + "@example.org"});
  for (int j = 0; j < 10; ++j) dir.aliases.insert({"top@example.org", "l0x" + std::to_string(j) + "@example.org"});
  router::ExpansionLimits small;
  small.max_expansion = 500;
  Message m;
  auto e = router::expand_recipient(dir, "top@example.org", m.context(), small);
  REQUIRE(e.recipients.size() == 1);
  CHECK(e.recipients[0].address == "top@example.org");
  CHECK(e.recipients[0].bounce_reason.rfind("5.3.0 expansion too large", 0) == 0);
  CHECK(e.warnings.size() == 1);
  CHECK(dir.lookups < 2000);  // bounded by the budget, not by the 10^6 paths

  // Within the budget the same kind of tree expands normally.
  small.max_expansion = 20000;
  FakeDirectory shallow = dir;
  shallow.aliases.clear();
  for (int j = 0; j < 10; ++j) shallow.aliases.insert({"top@example.org", "end@example.org"});
  CHECK(router::expand_recipient(shallow, "top@example.org", m.context(), small).recipients ==
        std::vector<FinalRecipient>{fr("end@example.org", "maildir", "/m/end")});
}

// RFC 5321 §4.5.1 (issue 13): postmaster in every local domain, and the bare
// <Postmaster>, reach someone without any per-domain setup.
TEST_CASE("postmaster: its own mailbox or alias wins, else [router] postmaster, else held") {
  FakeDirectory dir;
  dir.domains.insert("other.org");
  dir.mailboxes = {{"admin@example.org", "/m/admin"}, {"postmaster@other.org", "/m/pm-other"}};
  dir.catchalls = {{"example.org", "admin@example.org"}};
  Message m;
  auto with = [&](const std::string& postmaster, const std::string& rcpt) {
    auto l = limits();
    l.postmaster = postmaster;
    return router::expand_recipient(dir, rcpt, m.context(""), l).recipients;
  };
  const auto admin = std::vector<FinalRecipient>{fr("admin@example.org", "maildir", "/m/admin")};
  // Configured: the bare form and postmaster@ any local domain, any case; it
  // wins over the domain's catch-all.
  dir.catchalls = {{"example.org", "nobody@remote.example"}};
  CHECK(with("admin@example.org", "postmaster") == admin);
  CHECK(with("admin@example.org", "PostMaster") == admin);
  CHECK(with("admin@example.org", "POSTMASTER@example.org") == admin);
  // A domain's own postmaster mailbox wins.
  CHECK(with("admin@example.org", "postmaster@other.org") ==
        std::vector<FinalRecipient>{fr("postmaster@other.org", "maildir", "/m/pm-other")});
  // ... and so does an alias.
  dir.aliases = {{"postmaster@example.org", "postmaster@other.org"}};
  CHECK(with("admin@example.org", "postmaster@example.org") ==
        std::vector<FinalRecipient>{fr("postmaster@other.org", "maildir", "/m/pm-other")});
  dir.aliases.clear();
  // Remote postmasters are relayed like anyone else.
  CHECK(with("admin@example.org", "postmaster@remote.example") ==
        std::vector<FinalRecipient>{fr("postmaster@remote.example", "relay", "default")});

  // Not configured: held, never bounced.
  for (const auto* rcpt : {"postmaster", "postmaster@example.org"}) {
    auto held = with("", rcpt);
    REQUIRE(held.size() == 1);
    CHECK(held[0].transport == router::kHoldTransport);
    CHECK(held[0].bounce_reason.find("no [router] postmaster set") != std::string::npos);
  }
  // Configured as a postmaster address that has no mailbox: held, no loop.
  auto loop = with("postmaster@example.org", "postmaster");
  REQUIRE(loop.size() == 1);
  CHECK(loop[0].transport == router::kHoldTransport);
  CHECK(loop[0].bounce_reason.find("leads back to postmaster") != std::string::npos);
}

TEST_CASE("a held postmaster recipient holds the message's plan") {
  FakeDirectory dir;
  dir.mailboxes = {{"alice@example.org", "/m/alice"}};
  Message m;
  router::RouterConfig config;
  auto plan = router::plan_message(dir, config, {"alice@example.org", "postmaster"}, m.context());
  REQUIRE(plan.hold_reason);
  CHECK(plan.hold_reason->find("mail to postmaster") == 0);
  config.postmaster = "alice@example.org";
  plan = router::plan_message(dir, config, {"alice@example.org", "postmaster"}, m.context());
  CHECK_FALSE(plan.hold_reason);
  REQUIRE(plan.deliveries.size() == 1);  // one copy for alice
  CHECK(plan.deliveries[0].recipient == "alice@example.org");
}
