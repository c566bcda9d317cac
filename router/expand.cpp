#include "expand.h"

#include <set>

#include "address.h"

namespace wsmtp::router {
namespace {

// What list mail reaching a final recipient carries.
struct ListScope {
  std::string headers;
  std::string envelope_from;
};

class Expander {
 public:
  Expander(common::DirectoryLookup& directory, const MessageContext& message, const ExpansionLimits& limits)
      : dir_(directory), message_(message), limits_(limits) {}

  void visit(const std::string& address, int depth, const ListScope* scope) {
    if (static_cast<int>(out_.recipients.size()) >= limits_.max_results)
      return bounce(address, "5.3.0 expansion too large");
    auto parsed = common::parse_mailbox(address, true);
    if (!parsed) return bounce(address, "5.1.3 bad destination mailbox address syntax");
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
    // An alias naming itself was handled above (a mailbox); any other revisit
    // is a loop.
    if (seen_on_path) return bounce(key, "5.4.6 alias loop detected");
    if (info.local_domain && info.catchall && common::to_lower_ascii(*info.catchall) != key)
      return descend(key, {*info.catchall}, depth, scope);
    if (info.local_domain || parsed->is_address_literal()) return bounce(key, "5.1.1 user unknown");
    add({key, "relay", limits_.relay_pool, "", scope_headers(scope), scope_from(scope)});
  }

  Expansion take() { return std::move(out_); }

 private:
  // Follows key to targets one level deeper, key on the path for loop
  // detection.
  void descend(const std::string& key, const std::vector<std::string>& targets, int depth, const ListScope* scope) {
    if (depth >= limits_.max_depth) return bounce(key, "5.4.6 alias nesting too deep (possible loop)");
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

  void visit_list(const std::string& key, const common::MailingList& list, int depth, const ListScope* scope) {
    if (depth >= limits_.max_depth) return bounce(key, "5.4.6 list nesting too deep (possible loop)");
    // The loop guard: mail this list already sent out never expands again.
    for (auto value : message_.headers().all("X-Loop"))
      if (common::mail::mentions_address(value, key)) return bounce(key, "5.4.6 mail loop detected (X-Loop)");
    const bool from_owner =
        !message_.envelope_from.empty() && message_.envelope_from == common::to_lower_ascii(list.owner);
    if (list.policy == common::PostingPolicy::moderated && !from_owner)
      return descend(key, {list.owner}, depth,
                     scope);  // the owner decides whether to pass it on
    if (list.policy == common::PostingPolicy::members && !from_owner &&
        (message_.envelope_from.empty() || !dir_.is_list_member(key, message_.envelope_from)))
      return bounce(key, "5.7.2 only members may post to this list");
    ListScope inner{list_headers(list), list.bounce_address};
    out_.lists.push_back({key, inner.headers, inner.envelope_from});
    descend(key, dir_.list_members_to_expand(key), depth, &inner);
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

  void bounce(const std::string& address, const std::string& reason) {
    add({address, kBounceTransport, "", reason, "", std::nullopt});
  }
  void add(FinalRecipient r) {
    auto key = r.address + '\0' + r.transport + '\0' + r.destination;
    if (seen_.insert(key).second) out_.recipients.push_back(std::move(r));
  }

  common::DirectoryLookup& dir_;
  const MessageContext& message_;
  const ExpansionLimits& limits_;
  std::vector<std::string> path_;
  Expansion out_;
  std::set<std::string> seen_;
};

}  // namespace

Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits) {
  Expander e(directory, message, limits);
  e.visit(recipient, 0, nullptr);
  return e.take();
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
