// Mailing-list fan-out: a list's members become delivery rows in one
// INSERT ... SELECT, so a 10,000-member list costs one round trip, not one per
// member, and the lists of a whole batch of messages cost one statement
// together. Members that need the router's full expansion (aliases, nested
// lists, forwarding) are left out here and listed by list_members_to_expand().
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct ListFanout {
  std::string list_address;
  std::string original_rcpt;    // the envelope recipient that reached the list
  std::string prepend_headers;  // List-Id, List-Post, ..., each line ending CRLF
  std::string envelope_from;    // the list's bounce address
  std::string relay_pool;       // for members in remote domains
};

// SQL predicate over "lm" (list_members) LEFT JOIN "mb" (mailboxes on the
// member): true for members the bulk insert routes itself — plain mailboxes
// without forwarding, and addresses in domains that are not ours.
extern const char* const kBulkRoutableMember;

// A fan-out and the message it belongs to.
struct MessageFanout {
  std::int64_t msg_id = 0;
  ListFanout fanout;
};

// Inserts a delivery for every bulk-routable member of every list, in one
// statement (rows already planned for the message, or a member two of its
// lists share, are skipped). Returns the rows added per message id.
std::map<std::int64_t, int> insert_list_fanouts(pqxx::transaction_base& tx, const std::vector<MessageFanout>& fanouts);

// The same for one list of one message. Returns the rows added.
int insert_list_fanout(pqxx::transaction_base& tx, std::int64_t msg_id, const ListFanout& fanout);

}  // namespace wsmtp::common::pg
