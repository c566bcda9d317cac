// The one interface every delivery agent implements (Maildir, mbox, LMTP,
// relay): it takes the claimed deliveries of one destination and returns one
// outcome per delivery. The batch loop (deliver.cpp) groups and dispatches
// through it and knows nothing of mailboxes, quotas or SMTP; a transport knows
// nothing of claims' leases or of how outcomes are recorded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "pg/claim_types.h"
#include "pg/directory_link.h"
#include "pg/transitions.h"

namespace wsmtp::deliver {

// Deliveries of one message that travel together: one SMTP/LMTP transaction
// for the transports that share transactions, else exactly one task.
struct DeliveryJob {
  const common::pg::DeliveryClaim* claim = nullptr;
  std::vector<const common::pg::DeliveryTask*> tasks;
};

// Asked before each job is started: false skips it, and its tasks get no
// result (they stay pending). The worker says false for a message whose lease
// was lost or that was held or deleted while the batch was under way.
using MayStart = std::function<bool(const DeliveryJob&)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // The destination a task is delivered to (a relay pool, an LMTP server):
  // tasks with equal keys are handed to one deliver() call. "" groups all.
  virtual std::string destination_key(const common::pg::DeliveryTask& task) const = 0;

  // True if a job may carry several recipients of one message (one
  // transaction to a peer); false: every job holds one task.
  virtual bool shares_transactions() const = 0;

  // True for a peer over the network (relay, LMTP), which can stall for its
  // timeouts: a batch runs one remote destination, after everything else.
  virtual bool remote() const { return false; }

  // Delivers the jobs for `key` that may_start admits, in order; returns one
  // result per task of those (delivered, deferred with reason and retry
  // delay, or bounced with reason). conn is the claim's queue shard; the
  // directory (relay pools, quotas) is asked through `directory`
  // (directory_ask.h), and its being unreachable defers the deliveries that
  // needed it. A failure of one delivery is its result; throws only for the
  // shard's connection loss and what the caller cannot recover from (the
  // batch then rolls back and is retried).
  virtual std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                          const std::string& key, const std::vector<DeliveryJob>& jobs,
                                                          const MayStart& may_start) = 0;
};

}  // namespace wsmtp::deliver
