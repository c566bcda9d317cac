// The directory questions the router asks while expanding a recipient, as an
// interface so expansion policy is unit-tested without a database. The real
// implementation (db/directory.h, RouterDirectory) answers from
// PostgreSQL inside the router's transaction. Addresses are lookup keys (lower-case).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "directory_types.h"

namespace wsmtp::common {

// Everything the router needs to know about one address, in one answer (the
// PostgreSQL implementation makes it one round trip).
struct AddressInfo {
  bool local_domain = false;
  std::string delimiter;  // plus-addressing separator of the domain, "" for none
  std::vector<std::string> alias_targets;
  std::optional<MailboxTarget> mailbox;
  std::vector<std::string> forward_targets;  // when mailbox: forwarding
  bool forward_keep_copy = false;
  bool autoreply_active = false;  // when mailbox: a vacation reply is active now
  std::optional<MailingList> list;
  std::optional<std::string> catchall;  // the domain's catch-all target
};

// A list's members as the router expands them: the ones it must expand itself
// (list_members_to_expand) and how many more the bulk fan-out routes on its own
// (plain mailboxes, remote addresses). Their sum is the list's size.
struct ListMembers {
  std::vector<std::string> to_expand;
  std::int64_t bulk = 0;
  std::int64_t total() const { return bulk + static_cast<std::int64_t>(to_expand.size()); }
};

class DirectoryLookup {
 public:
  virtual ~DirectoryLookup() = default;
  virtual bool is_local_domain(const std::string& domain) = 0;
  virtual std::optional<MailboxTarget> find_mailbox(const std::string& address) = 0;
  virtual std::vector<std::string> alias_targets(const std::string& address) = 0;

  // Schema 003 (router rule book). The defaults describe a directory without
  // those features, so older implementations keep working.
  virtual std::string recipient_delimiter(const std::string& /*domain*/) { return "+"; }
  virtual std::optional<std::string> catchall_target(const std::string& /*domain*/) { return std::nullopt; }
  virtual std::vector<std::string> forward_targets(const std::string& /*mailbox*/, bool& keep_copy) {
    keep_copy = false;
    return {};
  }
  virtual bool autoreply_active(const std::string& /*mailbox*/) { return false; }
  virtual std::optional<MailingList> find_list(const std::string& /*address*/) { return std::nullopt; }
  virtual bool is_list_member(const std::string& /*list*/, const std::string& /*address*/) { return false; }
  // Members of a list that the bulk expansion (one INSERT ... SELECT) cannot
  // route by itself: local addresses that are not plain mailboxes (aliases,
  // lists, plus-addresses, mailboxes with forwarding).
  virtual std::vector<std::string> list_members_to_expand(const std::string& /*list*/) { return {}; }
  // Both kinds of member in one answer, looking at no more than limit + 1
  // members: a list with more than limit members answers with a total of
  // limit + 1 (and partial content), so a huge list costs bounded work. An
  // implementation with a bulk fan-out must override it: the default knows of
  // none (bulk = 0).
  virtual ListMembers list_members(const std::string& list, std::int64_t /*limit*/) {
    return {list_members_to_expand(list), 0};
  }

  // All of the above for one address. Implementations may answer in one query.
  virtual AddressInfo describe(const std::string& address, const std::string& domain) {
    AddressInfo info;
    info.local_domain = is_local_domain(domain);
    info.alias_targets = alias_targets(address);
    if (!info.local_domain) return info;
    info.delimiter = recipient_delimiter(domain);
    info.mailbox = find_mailbox(address);
    if (info.mailbox) {
      info.forward_targets = forward_targets(address, info.forward_keep_copy);
      info.autoreply_active = autoreply_active(address);
    }
    info.list = find_list(address);
    info.catchall = catchall_target(domain);
    return info;
  }
};

}  // namespace wsmtp::common
