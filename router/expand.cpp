#include "expand.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "address.h"

namespace wsmtp::router {
namespace {

// What list mail reaching a final recipient carries.
struct ListScope {
  std::string headers;
  std::string envelope_from;
};

using ListOutcome = ExpansionBudget::ListOutcome;

class Expander {
 public:
  Expander(common::DirectoryLookup& directory, const MessageContext& message, const ExpansionLimits& limits,
           ExpansionBudget& budget)
      : dir_(directory), message_(message), limits_(limits), budget_(budget) {}

  void visit(const std::string& address, int depth, const ListScope* scope) {
    if (overflow_) return;
    if (++visits_ > limits_.max_expansion) {
      overflow_ = true;
      return;
    }
    // The bare <Postmaster> the listener accepted (RFC 5321 §4.5.1).
    if (common::to_lower_ascii(address) == common::kBarePostmaster)
      return to_postmaster(std::string(common::kBarePostmaster), depth, scope,
                           on_path(std::string(common::kBarePostmaster)));
    auto parsed = common::parse_mailbox(address, true);
    if (!parsed) return bounce(address, "5.1.3 bad destination mailbox address syntax", scope);
    const std::string key = parsed->lookup_key();
    const std::string domain = common::to_lower_ascii(parsed->domain);
    const bool seen_on_path = on_path(key);
    auto info = dir_.describe(key, domain);
    if (!seen_on_path && !info.alias_targets.empty()) return descend(key, info.alias_targets, depth, scope);
    if (!seen_on_path && info.local_domain && !info.mailbox && !info.list) {
      if (auto base = base_address(key, info.delimiter)) return descend(key, {*base}, depth, scope);
    }
    if (info.mailbox) return visit_mailbox(key, info, depth, scope, seen_on_path);
    if (info.list && !seen_on_path) return visit_list(key, *info.list, depth, scope);
    // Before the catch-all: postmaster is the operator's, not whoever
    // collects a domain's unknown addresses.
    if (info.local_domain && common::is_postmaster_key(key)) return to_postmaster(key, depth, scope, seen_on_path);
    // An alias naming itself was handled above (a mailbox); any other revisit
    // is a loop.
    if (seen_on_path) return bounce(key, "5.4.6 alias loop detected", scope);
    if (info.local_domain && info.catchall && common::to_lower_ascii(*info.catchall) != key)
      return descend(key, {*info.catchall}, depth, scope);
    if (info.local_domain || parsed->is_address_literal()) return bounce(key, "5.1.1 user unknown", scope);
    add({key, "relay", limits_.relay_pool, "", scope_headers(scope), scope_from(scope)});
  }

  bool overflowed() const { return overflow_; }
  Expansion take() { return std::move(out_); }

 private:
  // Follows key to targets one level deeper, key on the path for loop
  // detection.
  void descend(const std::string& key, const std::vector<std::string>& targets, int depth, const ListScope* scope) {
    if (depth >= limits_.max_depth) return bounce(key, "5.4.6 alias nesting too deep (possible loop)", scope);
    path_.push_back(key);
    for (const auto& t : targets) visit(t, depth + 1, scope);
    path_.pop_back();
  }

  void visit_mailbox(const std::string& key, const common::AddressInfo& info, int depth, const ListScope* scope,
                     bool seen_on_path) {
    // A forwarding loop (a forwards to b, b to a) ends in the mailbox itself,
    // as an alias naming itself does: mail is delivered, never lost or bounced
    // around.
    if (!info.forward_targets.empty() && !seen_on_path) {
      descend(key, info.forward_targets, depth, scope);
      if (!info.forward_keep_copy) return;
    }
    add({key, info.mailbox->transport, info.mailbox->maildir, "", scope_headers(scope), scope_from(scope)});
    // RFC 3834 §2: list mail is not answered; only mail addressed to the
    // mailbox itself.
    if (info.autoreply_active && !scope) out_.autoreply_mailboxes.push_back(key);
  }

  // Postmaster without a mailbox, alias or list of its own: the configured
  // postmaster. With none configured, or one that leads back here, the
  // message is held rather than bounced or dropped (mail to postmaster is
  // often the report of a problem; a bounce of it would go to someone who
  // cannot fix ours): the operator sees it in `wsmtpctl queue`, sets
  // [router] postmaster and releases it. Inside a list's fan-out it is an
  // unknown member like any other, reported to the list: one member must not
  // hold a whole list's mail.
  void to_postmaster(const std::string& key, int depth, const ListScope* scope, bool seen_on_path) {
    const auto& target = limits_.postmaster;
    if (!target.empty() && target != key && !seen_on_path && !on_path(target))
      return descend(key, {target}, depth, scope);
    if (scope) return bounce(key, "5.1.1 user unknown", scope);
    add({key, kHoldTransport, "",
         target.empty()
             ? "mail to " + key + ": no mailbox or alias for it and no [router] postmaster set; set one, then release"
             : "mail to " + key + ": [router] postmaster " + target + " leads back to postmaster; fix it, then release",
         "", std::nullopt});
  }

  // Refusals of the list itself belong to whoever sent to it (scope: the
  // enclosing list, or none for the poster); what goes wrong among its members
  // belongs to the list's bounce address (the inner scope).
  void visit_list(const std::string& key, const common::MailingList& list, int depth, const ListScope* scope) {
    if (depth >= limits_.max_depth) return bounce(key, "5.4.6 list nesting too deep (possible loop)", scope);
    // The loop guard: mail this list already sent out never expands again.
    for (auto value : message_.headers().all("X-Loop"))
      if (common::mail::mentions_address(value, key)) return bounce(key, "5.4.6 mail loop detected (X-Loop)", scope);
    const bool from_owner =
        !message_.envelope_from.empty() && message_.envelope_from == common::to_lower_ascii(list.owner);
    if (list.policy == common::PostingPolicy::moderated && !from_owner)
      return descend(key, {list.owner}, depth, scope);  // the owner decides whether to pass it on
    if (list.policy == common::PostingPolicy::members && !from_owner &&
        (message_.envelope_from.empty() || !dir_.is_list_member(key, message_.envelope_from)))
      return bounce(key, "5.7.2 only members may post to this list", scope);
    if (auto done = budget_.lists.find(key); done != budget_.lists.end()) return revisit_list(key, done->second, scope);
    budget_.lists[key] = expand_list(key, list, depth, scope);
  }

  ListOutcome expand_list(const std::string& key, const common::MailingList& list, int depth, const ListScope* scope) {
    const std::int64_t room = std::max<std::int64_t>(0, limits_.max_list_members - budget_.list_members);
    auto members = dir_.list_members(key, room);
    if (members.total() > room) {
      out_.warnings.push_back(
          fmt::format("list {} not expanded: it has more members than the {} this message has left "
                      "of max_list_members ({})",
                      key, room, limits_.max_list_members));
      bounce(key, refusal_reason(ListOutcome::too_large), scope);
      return ListOutcome::too_large;
    }
    budget_.list_members += members.total();
    ListScope inner{list_headers(list), list.bounce_address};
    const int deliverable_before = deliverable_;
    descend(key, members.to_expand, depth, &inner);
    if (members.bulk > 0) out_.lists.push_back({key, inner.headers, inner.envelope_from});
    if (members.bulk > 0 || deliverable_ > deliverable_before) return ListOutcome::fanned_out;
    const auto outcome = members.total() == 0 ? ListOutcome::no_members : ListOutcome::none_deliverable;
    bounce(key, refusal_reason(outcome), scope);
    return outcome;
  }

  // A list this message already expanded: its members are planned (or it was
  // refused) once; only its verdict repeats.
  void revisit_list(const std::string& key, ListOutcome outcome, const ListScope* scope) {
    if (outcome == ListOutcome::fanned_out)
      ++deliverable_;
    else
      bounce(key, refusal_reason(outcome), scope);
  }

  // RFC 3463 X.2.4: "the mailbox is a mailing list address and the mailing
  // list was unable to be expanded".
  std::string refusal_reason(ListOutcome outcome) const {
    if (outcome == ListOutcome::no_members) return "5.2.4 mailing list has no members";
    if (outcome == ListOutcome::none_deliverable) return "5.2.4 mailing list has no deliverable members";
    return fmt::format("5.2.4 mailing list too large to expand (router limit of {} list members per message)",
                       limits_.max_list_members);
  }

  bool on_path(const std::string& key) const {
    for (const auto& p : path_)
      if (p == key) return true;
    return false;
  }

  // user+tag@domain -> user@domain (the first delimiter ends the base name).
  static std::optional<std::string> base_address(const std::string& key, const std::string& delimiter) {
    if (delimiter.empty()) return std::nullopt;
    auto at = key.rfind('@');
    auto cut = key.find(delimiter);
    if (at == std::string::npos || cut == std::string::npos || cut == 0 || cut >= at) return std::nullopt;
    return key.substr(0, cut) + key.substr(at);
  }

  static std::string scope_headers(const ListScope* s) { return s ? s->headers : std::string(); }
  static std::optional<std::string> scope_from(const ListScope* s) {
    return s ? std::optional<std::string>(s->envelope_from) : std::nullopt;
  }

  // Inside a list the report goes to the list's bounce address (scope_from).
  void bounce(const std::string& address, const std::string& reason, const ListScope* scope) {
    add({address, kBounceTransport, "", reason, "", scope_from(scope)});
  }
  void add(FinalRecipient r) {
    if (r.transport != kBounceTransport && r.transport != kHoldTransport) ++deliverable_;
    auto key = r.address + '\0' + r.transport + '\0' + r.destination;
    if (seen_.insert(key).second) out_.recipients.push_back(std::move(r));
  }

  common::DirectoryLookup& dir_;
  const MessageContext& message_;
  const ExpansionLimits& limits_;
  ExpansionBudget& budget_;
  std::vector<std::string> path_;
  Expansion out_;
  std::set<std::string> seen_;
  int visits_ = 0;
  bool overflow_ = false;
  int deliverable_ = 0;  // final recipients added that are not bounces, duplicates included
};

}  // namespace

Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits, ExpansionBudget& budget) {
  const ExpansionBudget before = budget;
  Expander e(directory, message, limits, budget);
  e.visit(recipient, 0, nullptr);
  if (!e.overflowed()) return e.take();
  // All or nothing: the lists it reached are not counted, and no partial plan
  // is delivered.
  budget = before;
  auto parsed = common::parse_mailbox(recipient, true);
  const std::string key = parsed ? parsed->lookup_key() : recipient;
  Expansion refused;
  refused.recipients.push_back(
      {key, kBounceTransport, "",
       fmt::format("5.3.0 expansion too large (more than {} addresses; router max_expansion)", limits.max_expansion),
       "", std::nullopt});
  refused.warnings.push_back(
      fmt::format("rcpt {} not expanded: more than {} addresses (max_expansion)", key, limits.max_expansion));
  return refused;
}

Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits) {
  ExpansionBudget budget;
  return expand_recipient(directory, recipient, message, limits, budget);
}

std::string list_headers(const common::MailingList& list) {
  std::string h;
  // RFC 2919 §3: List-Id: [phrase] <list-id>
  h += "List-Id: " + (list.description.empty() ? std::string() : list.description + " ") + "<" + list.list_id + ">\r\n";
  // RFC 2369 §3.4: posts go to the list address (a moderated list passes them
  // to its owner).
  h += "List-Post: <mailto:" + list.address + ">\r\n";
  h += "List-Unsubscribe: " +
       (list.unsubscribe.empty() ? "<mailto:" + list.owner + "?subject=unsubscribe>" : list.unsubscribe) + "\r\n";
  h += "List-Owner: <mailto:" + list.owner + ">\r\n";
  h += "Precedence: list\r\n";  // RFC 3834 §3.1.8: keeps vacation programs quiet
  h += "X-Loop: " + list.address + "\r\n";
  return h;
}

}  // namespace wsmtp::router
