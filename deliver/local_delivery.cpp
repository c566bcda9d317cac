#include "local_delivery.h"

#include <cerrno>
#include <exception>
#include <string>
#include <system_error>

#include "claim_body.h"
#include "compose.h"
#include "log.h"
#include "queue_id.h"

namespace wsmtp::deliver {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

void produce_local_copy(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                        const common::pg::DeliveryTask& task, const std::function<void(std::string_view)>& sink) {
  sink(local_trace_headers(task.envelope_from, task.recipient));
  CrlfToLf convert;
  std::string out;
  convert.feed(task.prepend_headers, out);  // list headers (List-Id, ...) go above the message's own
  sink(out);
  stream_claim_body(conn, claim, [&](std::string_view chunk) {
    out.clear();
    convert.feed(chunk, out);
    sink(out);
  });
  out.clear();
  convert.finish(out);
  sink(out);
}

bool fails_destination(const std::exception& e) {
  const auto* error = dynamic_cast<const std::system_error*>(&e);
  if (!error || error->code().category() != std::generic_category()) return false;
  switch (error->code().value()) {
    case EACCES:
    case EPERM:
    case EROFS:
    case EIO:
    case ENOSPC:
    case EDQUOT:
    case ENOTDIR:
      return true;
    default:
      return false;
  }
}

std::vector<DeliveryResult> run_local_jobs(const DeliverConfig& config, const std::vector<DeliveryJob>& jobs,
                                           const MayStart& may_start, const LocalCopy& copy) {
  std::vector<DeliveryResult> results;
  for (const auto& job : jobs) {
    if (may_start && !may_start(job)) continue;
    for (const auto* task : job.tasks) {
      try {
        results.push_back(copy(*job.claim, *task));
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const std::exception& e) {
        auto delay = retry_delay(config, task->attempts + 1);
        log::warn("msg={} rcpt={} deferred: {}; retry in {}s", common::qid(job.claim->lease.msg_id), task->recipient,
                  e.what(), delay.count());
        results.push_back({task->delivery_id, DeliveryStatus::deferred, e.what(), delay, fails_destination(e)});
      }
    }
  }
  return results;
}

}  // namespace wsmtp::deliver
