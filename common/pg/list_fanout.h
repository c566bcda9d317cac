// Mailing-list fan-out: a list's members become delivery rows in one
// INSERT ... SELECT, so a 10,000-member list costs one round trip, not one per
// member, and the lists of a whole batch of messages cost one statement
// together. Members that need the router's full expansion (aliases, nested
// lists, forwarding) are left out here and listed by list_members_to_expand().
// When the directory is another database than the message's queue shard, the
// members are read from the directory first (read_bulk_members, one round
// trip) and passed to the shard's statement as arrays.
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

// A bulk-routable member of a list as the directory describes it.
struct BulkMember {
  std::string list_address;
  std::string member;
  std::string transport;    // its mailbox's; "" for a remote member (relayed)
  std::string destination;  // its mailbox's Maildir, spool or LMTP server; "" for a remote member
};

// The bulk-routable members of lists, read in one statement from the
// directory (directory_tx: a transaction on the directory's database). No
// statement for no lists. Throws database errors.
std::vector<BulkMember> read_bulk_members(pqxx::transaction_base& directory_tx, const std::vector<std::string>& lists);

// Inserts a delivery for every bulk-routable member of every list, in one
// statement (rows already planned for the message, or a member two of its
// lists share, are skipped). members: nullptr when tx's database is also the
// directory (the statement joins list_members itself: the one-server layout);
// otherwise what read_bulk_members returned for (at least) these fan-outs'
// lists. Returns the rows added per message id.
std::map<std::int64_t, int> insert_list_fanouts(pqxx::transaction_base& tx, const std::vector<MessageFanout>& fanouts,
                                                const std::vector<BulkMember>* members = nullptr);

// The same for one list of one message. Returns the rows added.
int insert_list_fanout(pqxx::transaction_base& tx, std::int64_t msg_id, const ListFanout& fanout);

}  // namespace wsmtp::common::pg
