// The router's directory questions against schema 003 (catch-alls, plus-
// addressing delimiters, forwarding, mailing lists, auto-replies), answered in
// the caller's transaction, and RouterDirectory: the DirectoryLookup a routing
// transaction uses, which describes a whole batch's recipients in one round
// trip and remembers every answer for the rest of the transaction. Addresses
// are lookup keys (lower-case).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "directory_lookup.h"

namespace wsmtp::common::pg {

// Everything about one address and its domain in one round trip.
AddressInfo describe_address(pqxx::transaction_base& tx, const std::string& address, const std::string& domain);

// describe_address for many addresses (address[i] in domains[i]) in one round
// trip, keyed by address: the router describes a whole claimed batch at once.
std::map<std::string, AddressInfo> describe_addresses(pqxx::transaction_base& tx,
                                                      const std::vector<std::string>& addresses,
                                                      const std::vector<std::string>& domains);

bool is_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& address);

// Members the bulk fan-out (insert_list_fanouts) leaves to the router: local
// addresses that are not plain mailboxes (aliases, lists, plus-addresses,
// mailboxes with forwarding). Sorted.
std::vector<std::string> list_members_to_expand(pqxx::transaction_base& tx, const std::string& list);

// Those members and the number of bulk-routable ones in one scan of at most
// limit + 1 members (DirectoryLookup::list_members).
ListMembers list_members(pqxx::transaction_base& tx, const std::string& list, std::int64_t limit);

// A DirectoryLookup over one transaction that caches what it learnt: within a
// routing transaction the directory does not change under us for our purposes
// (a change committed meanwhile is seen by the next batch), and a batch of
// messages to the same few addresses then costs one lookup per address.
class RouterDirectory final : public DirectoryLookup {
 public:
  explicit RouterDirectory(pqxx::transaction_base& tx) : tx_(tx) {}

  // Describes all of addresses (address[i] in domains[i]) that are not known
  // yet, in one round trip.
  void prefetch(const std::vector<std::string>& addresses, const std::vector<std::string>& domains);

  AddressInfo describe(const std::string& address, const std::string& domain) override;
  ListMembers list_members(const std::string& list, std::int64_t limit) override;
  bool is_list_member(const std::string& list, const std::string& address) override;
  std::vector<std::string> list_members_to_expand(const std::string& list) override;
  bool is_local_domain(const std::string& domain) override;
  std::optional<MailboxTarget> find_mailbox(const std::string& address) override;
  std::vector<std::string> alias_targets(const std::string& address) override;

 private:
  pqxx::transaction_base& tx_;
  std::map<std::string, AddressInfo> described_;
  std::map<std::pair<std::string, std::int64_t>, ListMembers> members_;
};

}  // namespace wsmtp::common::pg
