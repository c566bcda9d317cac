// The "maildir" transport: every Maildir delivery of a pass goes to one
// deliver() call, which stages each copy in tmp/ (MaildirBatch), checks it
// against the mailbox's quota with its exact size (PassQuotas, maildirsize),
// and then makes all copies durable together (one parallel round of fsyncs and
// renames into new/). A copy an earlier attempt left is found by its name and
// not written again. One task per job.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "maildir.h"
#include "quota.h"
#include "transport.h"

namespace wsmtp::deliver {

class MaildirTransport : public Transport {
 public:
  // host: our name in the Maildir file names. Resolves config.maildir_owner.
  MaildirTransport(const DeliverConfig& config, std::string host);

  std::string destination_key(const common::pg::DeliveryTask&) const override { return {}; }
  bool shares_transactions() const override { return false; }
  // Throws pqxx errors when the quotas cannot be read (the batch is retried).
  std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                  const std::string& key, const std::vector<DeliveryJob>& jobs,
                                                  const MayStart& may_start) override;

 private:
  const DeliverConfig& config_;
  std::string host_;
  MaildirOwner owner_;
  KnownMaildirs known_maildirs_;
  MaildirUsageCache usage_cache_;  // kept across passes: a full, idle mailbox is not rescanned
};

}  // namespace wsmtp::deliver
