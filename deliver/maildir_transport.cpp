#include "maildir_transport.h"

#include <pwd.h>

#include <cstdint>
#include <utility>

#include <fmt/format.h>

#include "db/mailbox_full.h"
#include "directory_ask.h"
#include "local_delivery.h"
#include "log.h"
#include "queue_id.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryClaim;
using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;
using common::pg::DeliveryTask;

// The result for a copy the mailbox's quota refused: per [deliver] over_quota,
// a deferral (4.2.2) or a bounce (5.2.2); too big for the quota at all: 5.2.3.
DeliveryResult over_quota(const DeliverConfig& config, const DeliveryClaim& claim, const DeliveryTask& task,
                          QuotaVerdict verdict, const MaildirUsage& usage, std::uint64_t bytes,
                          const common::pg::MailboxQuota& quota) {
  auto limit = fmt::format("{}{}{}", quota.bytes ? human_bytes(static_cast<std::uint64_t>(*quota.bytes)) : "",
                           quota.bytes && quota.messages ? ", " : "",
                           quota.messages ? fmt::format("{} messages", *quota.messages) : "");
  if (verdict == QuotaVerdict::too_big) {
    auto detail = fmt::format("5.2.3 message of {} is larger than the quota of mailbox {} ({})", human_bytes(bytes),
                              task.recipient, limit);
    return {task.delivery_id, DeliveryStatus::bounced, detail, {}};
  }
  const bool bounce = config.over_quota == DeliverConfig::OverQuota::bounce;
  auto detail = fmt::format("{} mailbox {} is full: {} in {} messages, quota {}", bounce ? "5.2.2" : "4.2.2",
                            task.recipient, human_bytes(usage.bytes), usage.messages, limit);
  if (bounce) return {task.delivery_id, DeliveryStatus::bounced, detail, {}};
  auto delay = retry_delay(config, task.attempts + 1);
  log::info("msg={} rcpt={} deferred: {}; retry in {}s", common::qid(claim.lease.msg_id), task.recipient, detail,
            delay.count());
  return {task.delivery_id, DeliveryStatus::deferred, detail, delay};
}

// Stages one copy and applies the quota to it; the result is final only after
// the batch's sync(). A copy refused because the mailbox is full adds its
// recipient to `full`.
DeliveryResult stage_copy(pqxx::connection& conn, MaildirBatch& batch, PassQuotas& quotas, const DeliverConfig& config,
                          const DeliveryClaim& claim, const DeliveryTask& task, const std::string& host,
                          std::vector<std::string>& full) {
  auto name = maildir_unique_name(claim.received_epoch, claim.lease.msg_id, task.delivery_id, host);
  auto delivered =
      DeliveryResult{task.delivery_id, DeliveryStatus::delivered, "maildir " + task.destination + "/new/" + name, {}};
  // A copy an earlier attempt left is delivered, whatever the quota says now.
  // Only a message claimed before can have one.
  bool earlier_copy = false;
  if (claim.first_claim)
    batch.prepare(task.destination);
  else
    earlier_copy = batch.contains(task.destination, name);
  if (earlier_copy) {
    log::info("msg={} rcpt={} already in {} (earlier attempt); not written again", common::qid(claim.lease.msg_id),
              task.recipient, task.destination);
    return delivered;
  }
  batch.write(task.destination, name, [&](const ByteSink& sink) { produce_local_copy(conn, claim, task, sink); });
  if (const auto* quota = quotas.limits(task.recipient)) {
    // Checked once written, with the copy's exact size (trace headers, LF
    // line ends): a message larger than the quota is told apart from a full
    // mailbox even while the mailbox is full.
    auto bytes = batch.last_size();
    QuotaVerdict verdict;
    MaildirUsage usage;
    try {
      verdict = quotas.admit(task.recipient, task.destination, bytes);
      usage = quotas.usage(task.destination);  // after admit: what its verdict saw
    } catch (...) {
      // Unchecked, the copy must not land: deferred (by run_local_jobs), it
      // is written again and checked on the retry.
      batch.discard_last();
      throw;
    }
    if (verdict != QuotaVerdict::fits) {
      batch.discard_last();
      // Too big for the quota says nothing about the mailbox's other mail.
      if (verdict != QuotaVerdict::too_big) full.push_back(task.recipient);
      return over_quota(config, claim, task, verdict, usage, bytes, *quota);
    }
  }
  return delivered;
}

// The copies are already in new/: a failure to record the marks must not
// defer them (a retry would deliver them twice). The marks are advisory, and
// the next pass writes them again.
void record_fullness(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                     const std::vector<DeliveryResult>& results, const std::vector<std::string>& full,
                     const std::vector<std::pair<std::size_t, std::string>>& limited) {
  std::vector<std::string> fitted;
  for (const auto& [index, recipient] : limited)
    if (results.at(index).status == DeliveryStatus::delivered) fitted.push_back(recipient);
  try {
    ask_directory(directory, conn,
                  [&](pqxx::connection& dir) { common::pg::record_mailbox_fullness(dir, full, fitted); });
  } catch (const std::exception& e) {
    log::warn("full mailboxes not recorded ({} full, {} fitted): {}", full.size(), fitted.size(), e.what());
  }
}

}  // namespace

MaildirTransport::MaildirTransport(const DeliverConfig& config, std::string host)
    : config_(config), host_(std::move(host)) {
  owner_.dir_mode = static_cast<mode_t>(config.maildir_dir_mode);
  owner_.file_mode = static_cast<mode_t>(config.maildir_file_mode);
  if (!config.maildir_owner.empty()) {
    // Checked by read_deliver_config; resolved once, not per delivery.
    const passwd* pw = ::getpwnam(config.maildir_owner.c_str());
    if (!pw) log::fatal("maildir_owner {} vanished after the configuration check", config.maildir_owner);
    owner_.uid = pw->pw_uid;
    owner_.gid = pw->pw_gid;
  }
}

std::vector<DeliveryResult> MaildirTransport::deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                      const std::string&, const std::vector<DeliveryJob>& jobs,
                                                      const MayStart& may_start) {
  MaildirBatch batch(owner_, &known_maildirs_);
  PassQuotas quotas(usage_cache_);
  std::vector<std::string> recipients;
  for (const auto& job : jobs)
    for (const auto* task : job.tasks) recipients.push_back(task->recipient);
  try {
    ask_directory(directory, conn, [&](pqxx::connection& dir) { quotas.load(dir, recipients); });
  } catch (const DirectoryUnavailable& e) {
    // Without the limits no copy can be checked: none is written, all wait.
    log::warn("mailbox quotas not read ({}); {} Maildir deliveries deferred", e.what(), recipients.size());
    const std::string detail = std::string("4.3.0 mailbox quotas not read: ") + e.what();
    return run_local_jobs(config_, jobs, may_start, [&](const DeliveryClaim&, const DeliveryTask& task) {
      return DeliveryResult{task.delivery_id, DeliveryStatus::deferred, detail,
                            retry_delay(config_, task.attempts + 1)};
    });
  }
  // (index of its result, message) per staged copy, in stage order: what
  // batch.sync() reports on.
  std::vector<std::pair<std::size_t, std::int64_t>> staged;
  // Mailboxes found full, and (result index, recipient) of copies into
  // mailboxes with a quota: the listener's RCPT check reads the outcome (019).
  std::vector<std::string> full;
  std::vector<std::pair<std::size_t, std::string>> limited;
  std::size_t next_result = 0;
  auto results = run_local_jobs(config_, jobs, may_start, [&](const DeliveryClaim& claim, const DeliveryTask& task) {
    const std::size_t index = next_result++;
    const auto before = batch.size();
    if (quotas.limits(task.recipient)) limited.emplace_back(index, task.recipient);
    auto result = stage_copy(conn, batch, quotas, config_, claim, task, host_, full);
    if (batch.size() > before) staged.emplace_back(index, claim.lease.msg_id);
    return result;
  });
  // All copies made durable together; one that failed is deferred.
  auto errors = batch.sync();
  for (std::size_t i = 0; i < staged.size(); ++i) {
    const auto& error = errors.at(i);
    if (error.empty()) continue;
    auto& r = results.at(staged[i].first);
    log::warn("msg={} Maildir copy not durable: {}; deferred", common::qid(staged[i].second), error);
    r = {r.delivery_id, DeliveryStatus::deferred, error, retry_delay(config_, 1)};
  }
  record_fullness(conn, directory, results, full, limited);
  return results;
}

}  // namespace wsmtp::deliver
