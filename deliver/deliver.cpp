#include "deliver.h"

#include <pwd.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include <fmt/format.h>

#include "claim_body.h"
#include "compose.h"
#include "log.h"
#include "queue_id.h"
#include "maildir.h"
#include "mbox.h"
#include "pg/body.h"
#include "db/mbox_journal.h"
#include "pg/transitions.h"
#include "quota.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

// Streams one recipient's local copy: the trace headers, then the stored message
// with CRLF turned into LF.
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

// The result for a copy the mailbox's quota refused: per [deliver] over_quota,
// a deferral (4.2.2) or a bounce (5.2.2); too big for the quota at all: 5.2.3.
DeliveryResult over_quota(const DeliverConfig& config, const common::pg::DeliveryClaim& claim,
                          const common::pg::DeliveryTask& task, QuotaVerdict verdict, const MaildirUsage& usage,
                          std::uint64_t bytes, const common::pg::MailboxQuota& quota) {
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

DeliveryResult deliver_maildir(pqxx::connection& conn, MaildirBatch& batch, PassQuotas& quotas,
                               const DeliverConfig& config, const common::pg::DeliveryClaim& claim,
                               const common::pg::DeliveryTask& task, const std::string& host) {
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
      // Unchecked, the copy must not land: deferred (by the caller), it is
      // written again and checked on the retry.
      batch.discard_last();
      throw;
    }
    if (verdict != QuotaVerdict::fits) {
      batch.discard_last();
      return over_quota(config, claim, task, verdict, usage, bytes, *quota);
    }
  }
  // A staged copy is final only after batch.sync(); the caller downgrades
  // this result if that fails.
  return delivered;
}

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

DeliveryResult run_local_task(pqxx::connection& conn, MaildirBatch& batch, PassQuotas& quotas,
                              const DeliverConfig& config, const common::pg::DeliveryClaim& claim,
                              const common::pg::DeliveryTask& task, const std::string& host) {
  try {
    if (task.transport == "maildir") return deliver_maildir(conn, batch, quotas, config, claim, task, host);
    if (task.transport == "mbox") return deliver_mbox(conn, config, claim, task);
    return {task.delivery_id, DeliveryStatus::deferred, "no agent for transport " + task.transport,
            retry_delay(config, task.attempts + 1)};
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    // Local failures (disk full, permissions, lock timeouts) are temporary: an
    // admin can fix them, and the message must not bounce meanwhile.
    auto delay = retry_delay(config, task.attempts + 1);
    log::warn("msg={} rcpt={} deferred: {}; retry in {}s", common::qid(claim.lease.msg_id), task.recipient, e.what(),
              delay.count());
    return {task.delivery_id, DeliveryStatus::deferred, e.what(), delay};
  }
}

void log_result(const common::pg::DeliveryClaim& claim, const common::pg::DeliveryTask& task,
                const DeliveryResult& result) {
  if (result.status == DeliveryStatus::delivered)
    log::info("msg={} delivered rcpt={} orig={} via {}: {}", common::qid(claim.lease.msg_id), task.recipient,
              task.original_rcpt, task.transport, result.detail);
  else if (result.status == DeliveryStatus::bounced)
    log::info("msg={} bounced rcpt={} orig={} via {}: {}", common::qid(claim.lease.msg_id), task.recipient,
              task.original_rcpt, task.transport, result.detail);
}

// Records one message's results with its transition, inside the batch's
// transaction: a savepoint per message, so one message's failure (or lost
// lease) rolls back only its own part. `status` is what the lease renewal
// last found.
void finish_claim(pqxx::work& tx, const common::pg::DeliveryClaim& claim, const std::vector<DeliveryResult>& results,
                  const common::pg::FinishOptions& finish, common::pg::LeaseStatus status) {
  pqxx::subtransaction sub(tx, "finish");
  auto outcome = common::pg::finish_delivery(sub, claim.lease, results, finish);
  if (outcome == common::pg::FinishOutcome::lost_lease) {
    if (status == common::pg::LeaseStatus::deleted)
      log::info("msg={} deleted by an operator during delivery; results dropped: {}", common::qid(claim.lease.msg_id),
                results.size());
    else
      log::warn(
          "msg={} lease lost before delivery results were recorded; the new owner will redo them "
          "(Maildir copies are not duplicated)",
          common::qid(claim.lease.msg_id));
    sub.abort();
    return;
  }
  if (results.size() < claim.tasks.size())
    log::info("msg={} {} of {} deliveries not started ({}); left pending", claim.lease.msg_id,
              claim.tasks.size() - results.size(), claim.tasks.size(),
              status == common::pg::LeaseStatus::lost ? "lease lost" : "held by an operator");
  sub.commit();
}

// Makes the batch's Maildir copies durable together; a copy that failed turns
// its result into a deferral.
void sync_maildirs(MaildirBatch& batch, const std::vector<std::pair<std::int64_t, std::size_t>>& staged,
                   std::map<std::int64_t, std::vector<DeliveryResult>>& results, const DeliverConfig& config) {
  auto errors = batch.sync();
  std::size_t next = 0;
  for (const auto& [msg_id, index] : staged) {
    const auto& error = errors.at(next++);
    if (error.empty()) continue;
    auto& r = results[msg_id][index];
    log::warn("msg={} Maildir copy not durable: {}; deferred", common::qid(msg_id), error);
    r = {r.delivery_id, DeliveryStatus::deferred, error, retry_delay(config, 1)};
  }
}

// The messages whose every copy was delivered, finished together in one
// statement; a failure there leaves them all to finish_claim one by one.
std::set<std::int64_t> finish_all_delivered(pqxx::work& tx, const std::vector<common::pg::DeliveryClaim>& claims,
                                            std::map<std::int64_t, std::vector<DeliveryResult>>& results) {
  std::vector<common::pg::DeliveredMessage> delivered;
  for (const auto& claim : claims) {
    const auto& mine = results[claim.lease.msg_id];
    bool all = !mine.empty() && std::all_of(mine.begin(), mine.end(), [](const DeliveryResult& r) {
      return r.status == DeliveryStatus::delivered;
    });
    if (all) delivered.push_back({claim.lease, mine});
  }
  if (delivered.empty()) return {};
  try {
    pqxx::subtransaction sub(tx, "finish_delivered");
    auto ids = common::pg::finish_delivered_batch(sub, delivered);
    sub.commit();
    return {ids.begin(), ids.end()};
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    log::warn("finishing {} delivered messages together failed ({}); finishing them one by one", delivered.size(),
              e.what());
    return {};
  }
}

std::vector<std::string> maildir_recipients(const std::vector<common::pg::DeliveryClaim>& claims) {
  std::vector<std::string> out;
  for (const auto& claim : claims)
    for (const auto& task : claim.tasks)
      if (task.transport == "maildir") out.push_back(task.recipient);
  return out;
}

}  // namespace

std::chrono::seconds longest_quiet_step(const DeliverConfig& config) {
  const common::smtp::ClientOptions smtp_defaults;
  return std::max({config.relay_connect_timeout, config.relay_command_timeout, smtp_defaults.data_timeout,
                   config.mbox_lock_timeout}) +
         std::chrono::seconds(60);
}

Deliverer::Deliverer(const DeliverConfig& config, const common::QueueConfig& queue, std::string owner, std::string host,
                     common::pg::LeaseKeeper& keeper)
    : config_(config),
      queue_(queue),
      owner_(std::move(owner)),
      host_(std::move(host)),
      keeper_(keeper),
      relays_(config, [&keeper] { keeper.progress(); }),
      lmtp_(config, [&keeper] { keeper.progress(); }) {
  maildir_owner_.dir_mode = static_cast<mode_t>(config.maildir_dir_mode);
  maildir_owner_.file_mode = static_cast<mode_t>(config.maildir_file_mode);
  if (!config.maildir_owner.empty()) {
    // Checked by read_deliver_config; resolved once, not per delivery.
    const passwd* pw = ::getpwnam(config.maildir_owner.c_str());
    if (!pw) log::fatal("maildir_owner {} vanished after the configuration check", config.maildir_owner);
    maildir_owner_.uid = pw->pw_uid;
    maildir_owner_.gid = pw->pw_gid;
  }
}

int Deliverer::run_batch(pqxx::connection& conn) {
  common::pg::ClaimOptions options{.owner = owner_,
                                   .lease_time = queue_.lease_time,
                                   .limit = config_.batch_size,
                                   .max_expired_claims = queue_.max_expired_claims,
                                   .reclaim_expired = reclaim_cadence_.due()};
  const common::pg::FinishOptions finish{.max_queue_lifetime = queue_.queue_lifetime,
                                         .delay_warning_after = config_.delay_warning_after,
                                         .reporting_mta = config_.hostname};
  auto claims = common::pg::claim_for_delivery(conn, options, config_.transports);
  std::vector<common::pg::Lease> leases;
  std::map<std::int64_t, std::int64_t> msg_of;  // delivery id -> message id
  for (const auto& claim : claims) {
    leases.push_back(claim.lease);
    for (const auto& task : claim.tasks) msg_of[task.delivery_id] = claim.lease.msg_id;
  }
  // Renewed until the batch's results are committed (kept outlives tx below).
  auto kept = keeper_.keep(common::MsgState::delivering, leases);
  // Nothing new is started for a message held, deleted or lost meanwhile;
  // what is in flight finishes (a copy handed to a relay cannot be unsent).
  auto may_start = [this, &kept](const common::pg::DeliveryClaim& claim) {
    keeper_.progress();
    return kept.status(claim.lease.msg_id) == common::pg::LeaseStatus::ours;
  };
  std::map<std::int64_t, std::vector<DeliveryResult>> results;
  // Relay deliveries of all claimed messages, grouped by pool: one connection
  // then carries the whole batch.
  std::map<std::string, std::vector<RelayJob>> by_pool, by_lmtp_server;
  auto add_job = [](std::vector<RelayJob>& jobs, const common::pg::DeliveryClaim& claim,
                    const common::pg::DeliveryTask& task) {
    // One SMTP transaction carries the recipients of one message that share a
    // sender and prepended headers (a list's copies differ from direct ones).
    if (jobs.empty() || jobs.back().claim != &claim || jobs.back().tasks.front()->envelope_from != task.envelope_from ||
        jobs.back().tasks.front()->prepend_headers != task.prepend_headers)
      jobs.push_back({&claim, {}});
    jobs.back().tasks.push_back(&task);
  };
  MaildirBatch maildirs(maildir_owner_, &known_maildirs_);
  PassQuotas quotas(usage_cache_);
  quotas.load(conn, maildir_recipients(claims));
  std::vector<std::pair<std::int64_t, std::size_t>> staged;  // (msg, index in its results) per staged copy
  for (const auto& claim : claims) {
    auto& mine = results[claim.lease.msg_id];
    for (const auto& task : claim.tasks) {
      if (!may_start(claim)) break;
      if (task.transport == "relay")
        add_job(by_pool[task.destination], claim, task);
      else if (task.transport == "lmtp")
        add_job(by_lmtp_server[lmtp_.server_for(task.destination)], claim, task);
      else {
        auto before = maildirs.size();
        mine.push_back(run_local_task(conn, maildirs, quotas, config_, claim, task, host_));
        if (maildirs.size() > before) staged.emplace_back(claim.lease.msg_id, mine.size() - 1);
      }
    }
  }
  sync_maildirs(maildirs, staged, results, config_);
  auto collect = [&results, &msg_of](const std::vector<DeliveryResult>& out) {
    for (const auto& r : out) results[msg_of.at(r.delivery_id)].push_back(r);
  };
  auto job_may_start = [&may_start](const RelayJob& job) { return may_start(*job.claim); };
  for (const auto& [pool, jobs] : by_pool) collect(relays_.deliver(conn, pool, jobs, job_may_start));
  for (const auto& [server, jobs] : by_lmtp_server) collect(lmtp_.deliver(conn, server, jobs, job_may_start));
  if (claims.empty()) return 0;
  pqxx::work tx(conn);
  auto finished = finish_all_delivered(tx, claims, results);
  for (const auto& claim : claims) {
    try {
      const auto& mine = results[claim.lease.msg_id];
      std::map<std::int64_t, const common::pg::DeliveryTask*> tasks;
      for (const auto& task : claim.tasks) tasks[task.delivery_id] = &task;
      for (const auto& result : mine) log_result(claim, *tasks.at(result.delivery_id), result);
      if (!finished.count(claim.lease.msg_id)) finish_claim(tx, claim, mine, finish, kept.status(claim.lease.msg_id));
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      log::error("msg={} recording delivery results failed: {}; will retry after the lease expires",
                 common::qid(claim.lease.msg_id), e.what());
    }
  }
  // One commit (one WAL flush) for the whole batch.
  tx.commit();
  return static_cast<int>(claims.size());
}

}  // namespace wsmtp::deliver
