// One delivery pass: claim messages with due deliveries on our transports, run
// the local deliveries (Maildir, mbox) per message, and the relay deliveries per
// pool and LMTP deliveries per server (batched over kept connections), then record each message's results with
// its 4->5 (all final, DSN queued) or 4->3 (some deferred) transition in one
// transaction per message. The batch's leases are renewed meanwhile
// (common/pg/lease_keeper.h); a message held, deleted or lost on the way gets
// nothing more started.
#pragma once

#include <chrono>
#include <string>

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"
#include "pg/lease_keeper.h"
#include "pg/worker_loop.h"
#include "lmtp.h"
#include "maildir.h"
#include "quota.h"
#include "relay.h"

namespace wsmtp::deliver {

class Deliverer {
 public:
  // keeper renews the leases of each batch while run_batch works on it.
  Deliverer(const DeliverConfig& config, const common::QueueConfig& queue, std::string owner, std::string host,
            common::pg::LeaseKeeper& keeper);

  // Returns the number of messages claimed. Throws for database connection loss.
  int run_batch(pqxx::connection& conn);

 private:
  const DeliverConfig& config_;
  const common::QueueConfig& queue_;
  std::string owner_;
  std::string host_;
  common::pg::LeaseKeeper& keeper_;
  MaildirOwner maildir_owner_;
  KnownMaildirs known_maildirs_;
  MaildirUsageCache usage_cache_;  // kept across passes: a full, idle mailbox is not rescanned
  RelaySessions relays_;
  LmtpSessions lmtp_;
  common::pg::Cadence reclaim_cadence_{std::chrono::seconds(1)};  // expired leases: looked for once a second
};

// The longest a healthy deliverer waits on one step of its work without
// progress: its longest relay/LMTP timeout (connect, command, the final dot)
// or mbox lock wait, plus a minute. Its leases stop being renewed past it.
std::chrono::seconds longest_quiet_step(const DeliverConfig& config);

}  // namespace wsmtp::deliver
