#include "route.h"

#include <deque>
#include <optional>
#include <set>

#include "address.h"
#include "autoreply_queue.h"
#include "log.h"
#include "queue_id.h"
#include "db/bounces.h"
#include "db/directory.h"
#include "db/queue.h"
#include "pg/connection.h"
#include "pg/transitions.h"
#include "pg/transitions_hold.h"
#include "plan.h"

namespace wsmtp::router {
namespace {

using common::mail::HeaderBlock;
using common::pg::RoutingClaim;

// One claimed message inside the routing transaction: its header section is
// read only if a rule asks for it (list X-Loop checks, auto-replies).
struct MessageWork {
  MessageWork(pqxx::transaction_base& tx, const RoutingClaim& c)
      : claim(c), context{common::to_lower_ascii(c.envelope_from), [this, &tx]() -> const HeaderBlock& {
                            if (!headers) headers = common::pg::read_message_headers(tx, claim.lease.msg_id);
                            return *headers;
                          }} {}
  MessageWork(const MessageWork&) = delete;
  MessageWork& operator=(const MessageWork&) = delete;

  const RoutingClaim& claim;
  std::optional<HeaderBlock> headers;
  MessageContext context;
  Plan plan;
};

// All envelope recipients of claims[first..] in one round trip.
void prefetch_recipients(common::pg::RouterDirectory& directory, const std::vector<RoutingClaim>& claims,
                         std::size_t first) {
  std::vector<std::string> addresses, domains;
  for (std::size_t i = first; i < claims.size(); ++i)
    for (const auto& r : claims[i].recipients)
      if (auto parsed = common::parse_mailbox(r, true)) {
        addresses.push_back(parsed->lookup_key());
        domains.push_back(common::to_lower_ascii(parsed->domain));
      }
  directory.prefetch(addresses, domains);
}

// Members refused inside a list's fan-out are reported to the list's bounce
// address. Not for mail from the null sender: it is itself a report or an
// auto-reply, and answering it could loop (a bounce address that is a list
// distributing our report to the member that bounced again).
void report_list_bounces(pqxx::transaction_base& tx, const RouterConfig& config, const MessageWork& work) {
  for (const auto& [address, rows] : list_bounces(work.plan)) {
    if (work.context.envelope_from.empty()) {
      log::info("msg={} {} refused list members not reported to <{}>: the message's sender is <>",
                common::qid(work.claim.lease.msg_id), rows.size(), address);
      continue;
    }
    std::vector<common::pg::ListBounce> bounces;
    for (const auto* p : rows) bounces.push_back({p->recipient, p->original_rcpt, p->bounce_reason.value_or("")});
    common::pg::queue_list_bounce_report(tx, work.claim.lease.msg_id, address, bounces, config.hostname);
  }
}

// Plans claims[first..] with the directory read in directory_tx, up to and
// including the message whose list fan-outs take the chunk to
// max_list_members members; tx is the shard's routing transaction (the
// messages' headers).
void plan_chunk(pqxx::transaction_base& directory_tx, pqxx::transaction_base& tx, const RouterConfig& config,
                const std::vector<RoutingClaim>& claims, std::size_t first, std::deque<MessageWork>& works,
                std::vector<common::pg::RoutingPlan>& plans) {
  common::pg::RouterDirectory directory(directory_tx);
  prefetch_recipients(directory, claims, first);
  std::int64_t list_members = 0;
  for (std::size_t i = first; i < claims.size() && (i == first || list_members < config.max_list_members); ++i) {
    auto& work = works.emplace_back(tx, claims[i]);
    work.plan = plan_message(directory, config, claims[i].recipients, work.context);
    if (work.plan.hold_reason) continue;  // held below, nothing planned
    list_members += work.plan.list_members;
    plans.push_back({claims[i].lease, work.plan.deliveries, work.plan.fanouts});
  }
}

std::vector<std::string> fanout_lists(const std::vector<common::pg::RoutingPlan>& plans) {
  std::vector<std::string> lists;
  for (const auto& plan : plans)
    for (const auto& f : plan.fanouts) lists.push_back(f.list_address);
  return lists;
}

// Routes claims[first..] in one transaction on the shard, up to and including
// the message whose list fan-outs take the transaction to max_list_members
// members (so a batch of posts to big lists is several transactions of bounded
// size, not one huge one). The directory is read in that transaction when it is
// the shard's database, else in a read-only transaction on its own connection
// alongside (closed before the auto-replies' claims, which need a writing one).
// Returns how many claims it took (at least one); those that had lost their
// lease to another router are logged and left alone. Throws on any failure:
// nothing of them is written in the shard.
std::size_t route_chunk(pqxx::connection& conn, common::pg::DirectoryLink& link, const RouterConfig& config,
                        const std::vector<RoutingClaim>& claims, std::size_t first,
                        const common::pg::LeaseKeeper::Kept& kept) {
  pqxx::work tx(conn);
  std::deque<MessageWork> works;  // stable addresses: each context refers to its own element
  std::vector<common::pg::RoutingPlan> plans;
  std::optional<std::vector<common::pg::BulkMember>> members;  // unset: the fan-out joins them itself
  if (link.shared()) {
    plan_chunk(tx, tx, config, claims, first, works, plans);
  } else {
    pqxx::read_transaction directory_tx(link.connection(conn));
    plan_chunk(directory_tx, tx, config, claims, first, works, plans);
    members = common::pg::read_bulk_members(directory_tx, fanout_lists(plans));
    directory_tx.commit();
  }
  std::set<std::int64_t> moved;
  if (!plans.empty())
    for (const auto& r : common::pg::finish_routing(tx, plans, members ? &*members : nullptr)) moved.insert(r.msg_id);
  std::vector<DueAutoReply> replies;
  for (auto& work : works) {
    if (work.plan.hold_reason) {
      if (!common::pg::hold_unroutable(tx, work.claim.lease, *work.plan.hold_reason))
        log::warn("msg={} lease lost before it could be held; another router owns it",
                  common::qid(work.claim.lease.msg_id));
      continue;
    }
    if (!moved.count(work.claim.lease.msg_id)) {
      if (kept.status(work.claim.lease.msg_id) == common::pg::LeaseStatus::deleted)
        log::info("msg={} deleted by an operator while being routed; its plan is dropped",
                  common::qid(work.claim.lease.msg_id));
      else
        log::warn("msg={} lease lost before routing finished; another router owns it",
                  common::qid(work.claim.lease.msg_id));
      continue;
    }
    report_list_bounces(tx, config, work);
    for (auto& reply : due_autoreplies(work.claim.lease.msg_id, work.context, work.plan.autoreplies))
      replies.push_back(std::move(reply));
  }
  queue_autoreplies(conn, tx, link, config, replies);
  tx.commit();
  for (const auto& work : works)
    if (moved.count(work.claim.lease.msg_id)) log_plan(work.claim.lease.msg_id, work.plan);
  return works.size();
}

// One message in its own transaction; a failure is recorded against it.
void route_alone(pqxx::connection& conn, common::pg::DirectoryLink& link, const RouterConfig& config,
                 const common::QueueConfig& queue, const RoutingClaim& claim, common::pg::LeaseKeeper::Kept& kept) {
  try {
    route_chunk(conn, link, config, {claim}, 0, kept);
  } catch (const std::exception& e) {
    // A lost connection (the shard's or the directory's) is an outage, not the
    // message's fault: the loop reconnects, and our leases expire and are
    // claimed again.
    if (common::pg::is_connection_error(e)) throw;
    log::error("msg={} routing failed: {}", common::qid(claim.lease.msg_id), e.what());
    // Handed back: its short lease is the retry's backoff, not ours to renew.
    common::pg::record_routing_failure(conn, claim.lease, e.what(), config.max_routing_failures, queue.lease_time);
    kept.forget(claim.lease.msg_id);
  }
}

int route_claimed(pqxx::connection& conn, common::pg::DirectoryLink& link, const RouterConfig& config,
                  const common::QueueConfig& queue, const std::string& owner, common::pg::LeaseKeeper& keeper,
                  bool reclaim_expired) {
  common::pg::configure_router_session(conn);
  // A directory that cannot be reached is found before any message is
  // claimed, not after their leases were taken (they would come back only
  // when the leases run out, each time nearer to being held).
  link.connection(conn);
  common::pg::ClaimOptions options{.owner = owner,
                                   .lease_time = queue.lease_time,
                                   .limit = config.batch_size,
                                   .max_expired_claims = queue.max_expired_claims,
                                   .reclaim_expired = reclaim_expired};
  auto claims = common::pg::claim_for_routing(conn, options);
  std::vector<common::pg::Lease> leases;
  for (const auto& c : claims) leases.push_back(c.lease);
  // Renewed until the plans are committed; a message held meanwhile is still
  // routed (its plan is what was done) and stays held in ROUTED.
  auto kept = keeper.keep(common::MsgState::routing, leases);
  std::vector<RoutingClaim> together, alone;
  for (auto& c : claims) (c.expired_claims == 0 ? together : alone).push_back(std::move(c));
  std::size_t done = 0;
  if (together.size() > 1) {
    try {
      while (done < together.size()) {
        done += route_chunk(conn, link, config, together, done, kept);
        keeper.progress();
      }
    } catch (const std::exception& e) {
      if (common::pg::is_connection_error(e)) throw;
      log::warn("routing a batch of {} messages failed ({}); routing them one by one", together.size() - done,
                e.what());
    }
  }
  for (std::size_t i = done; i < together.size(); ++i) {
    route_alone(conn, link, config, queue, together[i], kept);
    keeper.progress();
  }
  for (const auto& c : alone) {
    route_alone(conn, link, config, queue, c, kept);
    keeper.progress();
  }
  if (claims.empty()) {
    // Idle: forget fairness clocks that no longer delay anyone.
    pqxx::work tx(conn);
    common::pg::prune_route_fairness(tx, 1000);
    tx.commit();
  }
  return static_cast<int>(claims.size());
}

}  // namespace

int route_batch(pqxx::connection& conn, common::pg::DirectoryLink& link, const RouterConfig& config,
                const common::QueueConfig& queue, const std::string& owner, common::pg::LeaseKeeper& keeper,
                bool reclaim_expired) {
  try {
    return route_claimed(conn, link, config, queue, owner, keeper, reclaim_expired);
  } catch (const std::exception& e) {
    // Which connection broke is not known here; the directory's is made again
    // on its next use either way (a shard outage costs it one reconnection).
    if (common::pg::is_connection_error(e)) link.reset();
    throw;
  }
}

}  // namespace wsmtp::router
