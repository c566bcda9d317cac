#include "mbox_transport.h"

#include <ctime>

#include <fmt/format.h>

#include "local_delivery.h"
#include "log.h"
#include "mbox.h"
#include "db/mbox_journal.h"
#include "queue_id.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

DeliveryResult deliver_mbox(pqxx::connection& conn, const DeliverConfig& config, const common::pg::DeliveryClaim& claim,
                            const common::pg::DeliveryTask& task) {
  // Exactly once across crashes: the copy carries the delivery's token, and
  // where it starts is journalled in the delivery row before it is written.
  MboxCopyId copy;
  copy.token = fmt::format("{}.W{}_{}", claim.received_epoch, claim.lease.msg_id, task.delivery_id);
  copy.previous_offset = common::pg::load_spool_offset(conn, task.delivery_id);
  copy.record_offset = [&](std::int64_t offset) { common::pg::save_spool_offset(conn, task.delivery_id, offset); };
  auto outcome = deliver_to_mbox(
      task.destination, task.envelope_from, std::time(nullptr),
      [&](const MboxSink& sink) { produce_local_copy(conn, claim, task, sink); },
      {config.mbox_lock_timeout, config.mbox_stale_lock_age}, &copy);
  if (outcome == MboxOutcome::already_present)
    log::info("msg={} rcpt={} already in {} (earlier attempt); not appended again", common::qid(claim.lease.msg_id),
              task.recipient, task.destination);
  else if (outcome == MboxOutcome::replaced_partial)
    log::warn("msg={} rcpt={} an unfinished copy from an earlier attempt ended {}; cut off and written again",
              common::qid(claim.lease.msg_id), task.recipient, task.destination);
  else if (outcome == MboxOutcome::appended_after_partial)
    log::warn("msg={} rcpt={} an unfinished copy from an earlier attempt stays in {} (other mail follows it)",
              common::qid(claim.lease.msg_id), task.recipient, task.destination);
  return {task.delivery_id, DeliveryStatus::delivered, "mbox " + task.destination, {}};
}

}  // namespace

std::vector<DeliveryResult> MboxTransport::deliver(pqxx::connection& conn, common::pg::DirectoryLink&,
                                                   const std::string&, const std::vector<DeliveryJob>& jobs,
                                                   const MayStart& may_start) {
  return run_local_jobs(config_, jobs, may_start,
                        [&](const common::pg::DeliveryClaim& claim, const common::pg::DeliveryTask& task) {
                          return deliver_mbox(conn, config_, claim, task);
                        });
}

}  // namespace wsmtp::deliver
