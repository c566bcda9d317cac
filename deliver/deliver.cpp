#include "deliver.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "log.h"
#include "printable.h"
#include "pg/transitions.h"
#include "queue_id.h"
#include "destination_gate.h"
#include "transport.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

using Results = std::map<std::int64_t, std::vector<DeliveryResult>>;          // per message id
using TaskOf = std::function<const common::pg::DeliveryTask&(std::int64_t)>;  // by delivery id

// Per transport (in dispatch order), its jobs per destination: all of a
// batch's deliveries to one relay pool travel over one connection, all its
// Maildir copies share one round of fsyncs.
using Groups = std::vector<std::map<std::string, std::vector<DeliveryJob>>>;

// Groups the claims' tasks in claim and task order, up to a claim's first
// task may_start refuses; a task whose destination gate refuses is left out
// (no result: it stays pending). A task on a transport none serves is
// deferred in `results` at once.
Groups group_jobs(const TransportRegistry& transports, const std::vector<common::pg::DeliveryClaim>& claims,
                  const std::function<bool(const common::pg::DeliveryClaim&)>& may_start, const DestinationGate& gate,
                  const DeliverConfig& config, Results& results) {
  Groups groups(transports.size());
  for (const auto& claim : claims) {
    for (const auto& task : claim.tasks) {
      if (!may_start(claim)) break;
      if (!gate.admits(task)) continue;
      const int index = transports.index_of(task.transport);
      if (index < 0) {
        results[claim.lease.msg_id].push_back({task.delivery_id, DeliveryStatus::deferred,
                                               "no agent for transport " + task.transport,
                                               retry_delay(config, task.attempts + 1)});
        continue;
      }
      const auto& transport = transports.at(static_cast<std::size_t>(index));
      auto& jobs = groups[static_cast<std::size_t>(index)][transport.destination_key(task)];
      // One transaction carries the recipients of one message that share a
      // sender and prepended headers (a list's copies differ from direct ones).
      if (!transport.shares_transactions() || jobs.empty() || jobs.back().claim != &claim ||
          jobs.back().tasks.front()->envelope_from != task.envelope_from ||
          jobs.back().tasks.front()->prepend_headers != task.prepend_headers)
        jobs.push_back({&claim, {}});
      jobs.back().tasks.push_back(&task);
    }
  }
  return groups;
}

// The remote group (transport index, destination key) of the earliest
// claimed task whose destination the gate admits; nullopt if none.
std::optional<std::pair<std::size_t, std::string>> first_remote_group(
    const TransportRegistry& transports, const std::vector<common::pg::DeliveryClaim>& claims,
    const DestinationGate& gate) {
  for (const auto& claim : claims)
    for (const auto& task : claim.tasks) {
      const int index = transports.index_of(task.transport);
      if (index < 0 || !gate.admits(task)) continue;
      const auto& transport = transports.at(static_cast<std::size_t>(index));
      if (transport.remote()) return std::pair{static_cast<std::size_t>(index), transport.destination_key(task)};
    }
  return std::nullopt;
}

void log_result(const common::pg::DeliveryClaim& claim, const common::pg::DeliveryTask& task,
                const DeliveryResult& result) {
  if (result.status == DeliveryStatus::delivered)
    log::info("msg={} delivered rcpt={} orig={} via {}: {}", common::qid(claim.lease.msg_id), task.recipient,
              task.original_rcpt, task.transport, common::printable(result.detail));
  else if (result.status == DeliveryStatus::bounced)
    log::info("msg={} bounced rcpt={} orig={} via {}: {}", common::qid(claim.lease.msg_id), task.recipient,
              task.original_rcpt, task.transport, common::printable(result.detail));
}

// Records one message's results with its transition, inside the batch's
// transaction: a savepoint per message, so one message's failure (or lost
// lease) rolls back only its own part. `status` is what the lease renewal
// last found.
void finish_claim(pqxx::work& tx, const common::pg::DeliveryClaim& claim, const std::vector<DeliveryResult>& results,
                  const common::pg::FinishOptions& finish, common::pg::LeaseStatus status) {
  pqxx::subtransaction sub(tx, "finish");
  auto outcome = common::pg::finish_delivery(sub, claim.lease, results, finish, claim.first_claim);
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
              status == common::pg::LeaseStatus::lost   ? "lease lost"
              : status == common::pg::LeaseStatus::ours ? "destination busy"
                                                        : "held by an operator");
  sub.commit();
}

// The messages whose every copy was delivered, finished together in one
// statement; a failure there leaves them all to finish_claim one by one.
std::set<std::int64_t> finish_all_delivered(pqxx::work& tx, const std::vector<const common::pg::DeliveryClaim*>& claims,
                                            Results& results) {
  std::vector<common::pg::DeliveredMessage> delivered;
  for (const auto* each : claims) {
    const auto& claim = *each;
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

// Records the verdicts on destinations (backing off those that failed as a
// whole, and deferring their tasks past it) and the results of `claims`, in
// one transaction.
void finish_batch(pqxx::connection& conn, const DeliverConfig& config, const common::QueueConfig& queue,
                  const std::vector<const common::pg::DeliveryClaim*>& claims, Results& results,
                  const std::vector<common::pg::DestinationVerdict>& verdicts,
                  const common::pg::LeaseKeeper::Kept& kept, const TaskOf& task_of) {
  const common::pg::FinishOptions finish{.max_queue_lifetime = queue.queue_lifetime,
                                         .delay_warning_after = config.delay_warning_after,
                                         .reporting_mta = config.hostname};
  pqxx::work tx(conn);
  if (config.destination_backoff_after > 0 && !verdicts.empty()) {
    auto backed_off = common::pg::record_destination_verdicts(
        tx, verdicts,
        {config.destination_backoff_after, config.destination_backoff_base, config.destination_backoff_max});
    for (const auto& [d, left] : backed_off)
      log::warn("destination {} {} backed off for {}s after failing as a whole", d.transport, d.destination,
                left.count());
    for (const auto* claim : claims) defer_past_backoff(results[claim->lease.msg_id], backed_off, task_of);
  }
  auto finished = finish_all_delivered(tx, claims, results);
  for (const auto* each : claims) {
    const auto& claim = *each;
    try {
      const auto& mine = results[claim.lease.msg_id];
      for (const auto& result : mine) log_result(claim, task_of(result.delivery_id), result);
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
}

}  // namespace

Deliverer::Deliverer(const DeliverConfig& config, const common::QueueConfig& queue, std::string owner,
                     common::pg::LeaseKeeper& keeper, TransportRegistry transports, common::pg::DirectoryLink directory)
    : config_(config),
      queue_(queue),
      owner_(std::move(owner)),
      keeper_(keeper),
      transports_(std::move(transports)),
      directory_(std::move(directory)) {
  for (const auto& t : config_.transports) {
    limits_.transports.push_back(t);
    limits_.limits.push_back(concurrency_limit(config_, t));
  }
}

int Deliverer::run_batch(pqxx::connection& conn) {
  common::pg::ClaimOptions options{.owner = owner_,
                                   .lease_time = queue_.lease_time,
                                   .limit = config_.batch_size,
                                   .max_expired_claims = queue_.max_expired_claims,
                                   .reclaim_expired = reclaim_cadence_.due(),
                                   .retry_limit = retry_lane_size(config_)};
  auto claims = common::pg::claim_for_delivery(conn, options, config_.transports, limits_);
  if (claims.empty()) return 0;
  std::vector<common::pg::Lease> leases;
  std::map<std::int64_t, const common::pg::DeliveryTask*> task_by_id;
  std::map<std::int64_t, std::int64_t> msg_of;  // delivery id -> message id
  for (const auto& claim : claims) {
    leases.push_back(claim.lease);
    for (const auto& task : claim.tasks) {
      msg_of[task.delivery_id] = claim.lease.msg_id;
      task_by_id[task.delivery_id] = &task;
    }
  }
  auto task_of = [&task_by_id](std::int64_t delivery_id) -> const common::pg::DeliveryTask& {
    return *task_by_id.at(delivery_id);
  };
  // Renewed until the batch's results are committed (kept outlives tx below).
  auto kept = keeper_.keep(common::MsgState::delivering, leases);
  // Nothing new is started for a message held, deleted or lost meanwhile;
  // what is in flight finishes (a copy handed to a relay cannot be unsent).
  auto may_start = [this, &kept](const common::pg::DeliveryClaim& claim) {
    keeper_.progress();
    return kept.status(claim.lease.msg_id) == common::pg::LeaseStatus::ours;
  };
  DestinationGate gate(conn, claims, [this](const std::string& t) { return concurrency_limit(config_, t); });
  Results results;
  auto groups = group_jobs(transports_, claims, may_start, gate, config_, results);
  auto job_may_start = [&may_start](const DeliveryJob& job) { return may_start(*job.claim); };
  std::vector<common::pg::DestinationVerdict> verdicts;
  auto run_group = [&](std::size_t index, const std::string& key, const std::vector<DeliveryJob>& jobs) {
    auto done = transports_.at(index).deliver(conn, directory_, key, jobs, job_may_start);
    for (auto& v : destination_verdicts(done, task_of)) verdicts.push_back(std::move(v));
    for (auto& r : done) results[msg_of.at(r.delivery_id)].push_back(std::move(r));
  };
  // Local copies first; then one remote destination (a relay pool, an LMTP
  // server) per batch, the one the earliest claimed task goes to. A remote
  // peer can stall for its timeouts: whatever else the batch holds is
  // finished before it starts, and the other remote groups are left pending
  // for the next claim, so no mail waits behind a peer it is not bound for.
  const auto remote = first_remote_group(transports_, claims, gate);
  auto in_remote = [&](const common::pg::DeliveryTask& task) {
    return remote && gate.admits(task) && transports_.index_of(task.transport) == static_cast<int>(remote->first) &&
           transports_.at(remote->first).destination_key(task) == remote->second;
  };
  std::set<common::pg::Destination> remote_destinations;
  for (const auto& [id, task] : task_by_id)
    if (in_remote(*task)) remote_destinations.insert(destination_of(*task));
  for (std::size_t i = 0; i < groups.size(); ++i)
    if (!transports_.at(i).remote())
      for (const auto& [key, jobs] : groups[i]) run_group(i, key, jobs);
  gate.release([&](const common::pg::Destination& d) { return !remote_destinations.count(d); });
  std::vector<const common::pg::DeliveryClaim*> now, later;
  for (const auto& claim : claims)
    (std::any_of(claim.tasks.begin(), claim.tasks.end(), in_remote) ? later : now).push_back(&claim);
  if (!now.empty()) {
    finish_batch(conn, config_, queue_, now, results, verdicts, kept, task_of);
    verdicts.clear();
  }
  if (!remote) return static_cast<int>(claims.size());
  for (const auto* claim : now) kept.forget(claim->lease.msg_id);
  run_group(remote->first, remote->second, groups[remote->first][remote->second]);
  gate.release([](const common::pg::Destination&) { return true; });
  finish_batch(conn, config_, queue_, later, results, verdicts, kept, task_of);
  return static_cast<int>(claims.size());
}

}  // namespace wsmtp::deliver
