#include "deliver.h"

#include "compose.h"
#include "log.h"
#include "maildir.h"
#include "pg/body.h"
#include "pg/transitions.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

// Writes one recipient's copy into its Maildir, streaming the body from the
// database in its own read-only transaction.
DeliveryResult deliver_maildir(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                               const common::pg::DeliveryTask& task, const std::string& host) {
  auto name = maildir_unique_name(claim.received_epoch, claim.lease.msg_id, task.delivery_id, host);
  auto outcome = deliver_to_maildir(task.destination, name, [&](const ByteSink& sink) {
    sink(local_trace_headers(claim.envelope_from, task.recipient));
    pqxx::read_transaction tx(conn);
    CrlfToLf convert;
    std::string out;
    common::pg::read_body(tx, claim.lease.msg_id, [&](std::string_view chunk) {
      out.clear();
      convert.feed(chunk, out);
      sink(out);
    });
    out.clear();
    convert.finish(out);
    sink(out);
  });
  if (outcome == MaildirOutcome::already_present)
    log::info("msg={} rcpt={} already in {} (earlier attempt); not written again", claim.lease.msg_id, task.recipient,
              task.destination);
  return {task.delivery_id, DeliveryStatus::delivered, "maildir " + task.destination + "/new/" + name, {}};
}

DeliveryResult run_task(pqxx::connection& conn, const DeliverConfig& config, const common::pg::DeliveryClaim& claim,
                        const common::pg::DeliveryTask& task, const std::string& host) {
  try {
    if (task.transport == "maildir") return deliver_maildir(conn, claim, task, host);
    return {task.delivery_id, DeliveryStatus::deferred, "no agent for transport " + task.transport,
            retry_delay(config, task.attempts + 1)};
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    // Local failures (disk full, permissions, I/O errors) are temporary: an admin
    // can fix them, and the message must not bounce meanwhile.
    auto delay = retry_delay(config, task.attempts + 1);
    log::warn("msg={} rcpt={} deferred: {}; retry in {}s", claim.lease.msg_id, task.recipient, e.what(),
              delay.count());
    return {task.delivery_id, DeliveryStatus::deferred, e.what(), delay};
  }
}

}  // namespace

int deliver_batch(pqxx::connection& conn, const DeliverConfig& config, const common::QueueConfig& queue,
                  const std::string& owner, const std::string& host) {
  common::pg::ClaimOptions options{owner, queue.lease_time, config.batch_size, queue.max_expired_claims};
  auto claims = common::pg::claim_for_delivery(conn, options, config.transports);
  for (const auto& claim : claims) {
    try {
      std::vector<DeliveryResult> results;
      for (const auto& task : claim.tasks) {
        results.push_back(run_task(conn, config, claim, task, host));
        if (results.back().status == DeliveryStatus::delivered)
          log::info("msg={} delivered rcpt={} orig={} via {}: {}", claim.lease.msg_id, task.recipient,
                    task.original_rcpt, task.transport, results.back().detail);
      }
      pqxx::work tx(conn);
      auto outcome = common::pg::finish_delivery(tx, claim.lease, results);
      if (outcome == common::pg::FinishOutcome::lost_lease) {
        log::warn("msg={} lease lost before delivery results were recorded; the new owner will redo them "
                  "(Maildir copies are not duplicated)",
                  claim.lease.msg_id);
        continue;
      }
      tx.commit();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      log::error("msg={} delivery pass failed: {}; will retry after the lease expires", claim.lease.msg_id, e.what());
    }
  }
  return static_cast<int>(claims.size());
}

}  // namespace wsmtp::deliver
