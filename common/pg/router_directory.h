// The router's directory questions against schema 003 (catch-alls, plus-
// addressing delimiters, forwarding, mailing lists, auto-replies), answered in
// the caller's transaction. Addresses are lookup keys (lower-case).
#pragma once

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

// Members the bulk fan-out (insert_list_fanout) leaves to the router: local
// addresses that are not plain mailboxes (aliases, lists, plus-addresses,
// mailboxes with forwarding). Sorted.
std::vector<std::string> list_members_to_expand(pqxx::transaction_base& tx, const std::string& list);

}  // namespace wsmtp::common::pg
