// The "mbox" transport: each delivery is appended to the spool file named by
// its destination (deliver_to_mbox in mbox.h), exactly once across crashes:
// where a copy starts is journalled in the delivery row before it is written.
// One task per job; every mbox delivery of a pass goes to one deliver() call.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "transport.h"

namespace wsmtp::deliver {

class MboxTransport : public Transport {
 public:
  explicit MboxTransport(const DeliverConfig& config) : config_(config) {}

  std::string destination_key(const common::pg::DeliveryTask&) const override { return {}; }
  bool shares_transactions() const override { return false; }
  std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                  const std::string& key, const std::vector<DeliveryJob>& jobs,
                                                  const MayStart& may_start) override;

 private:
  const DeliverConfig& config_;
};

}  // namespace wsmtp::deliver
