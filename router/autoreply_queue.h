// The vacation replies of routed messages: which ones RFC 3834 allows
// (autoreply.h), the once-per-period claim in the directory (db/autoreplies.h)
// and the reply messages, created in the routed message's shard. Knows nothing
// of plans, leases or how the claims are batched into transactions beyond the
// DirectoryLink.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "config.h"
#include "expand.h"
#include "pg/directory_link.h"

namespace wsmtp::router {

// A reply the RFC 3834 rules allow, still to be claimed.
struct DueAutoReply {
  std::int64_t msg_id = 0;
  std::string mailbox;                                 // who answers
  std::string sender;                                  // the message's envelope sender (lookup form)
  const common::mail::HeaderBlock* headers = nullptr;  // the message's; outlives the reply's creation
  int position = 0;                                    // among the message's planned replies (for the Message-ID)
};

// The replies of one message with these planned (mailbox, original recipient)
// pairs that the RFC 3834 rules allow. Reads the headers (context.headers())
// only when a reply is planned.
std::vector<DueAutoReply> due_autoreplies(std::int64_t msg_id, const MessageContext& context,
                                          const std::vector<std::pair<std::string, std::string>>& planned);

// Claims each due reply's once-per-period record in the directory and creates
// the replies whose claim succeeded as new messages in shard_tx (the routed
// messages' shard). When the directory is shared (link.shared()) the claims
// are in shard_tx itself, so a claim exists exactly when its reply does;
// otherwise all claims go in one short transaction of their own on the
// directory, committed before the replies are created: if shard_tx then does
// not commit, those replies are lost (never sent twice). Call it last before
// committing shard_tx, to keep that window small. Throws database errors.
void queue_autoreplies(pqxx::connection& shard_conn, pqxx::transaction_base& shard_tx, common::pg::DirectoryLink& link,
                       const RouterConfig& config, const std::vector<DueAutoReply>& due);

}  // namespace wsmtp::router
