#include "route.h"

#include <ctime>
#include <deque>
#include <optional>
#include <set>

#include "address.h"
#include "autoreply.h"
#include "log.h"
#include "queue_id.h"
#include "db/autoreplies.h"
#include "db/bounces.h"
#include "db/directory.h"
#include "db/queue.h"
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

// Queues the vacation replies that RFC 3834 allows, in the routing transaction.
void send_autoreplies(pqxx::transaction_base& tx, const RouterConfig& config, MessageWork& work) {
  const auto& context = work.context;
  if (work.plan.autoreplies.empty() || autoreply_sender_excluded(context.envelope_from)) return;
  const HeaderBlock& headers = context.headers();
  if (autoreply_message_excluded(headers)) return;
  int n = 0;
  const auto msg_id = work.claim.lease.msg_id;
  for (const auto& [mailbox, original_rcpt] : work.plan.autoreplies) {
    ++n;
    if (mailbox == context.envelope_from || !autoreply_direct_recipient(headers, mailbox, original_rcpt)) continue;
    auto text = common::pg::claim_autoreply(tx, mailbox, context.envelope_from);
    if (!text) continue;
    const std::time_t now = std::time(nullptr);
    AutoReplyMessage reply{mailbox,
                           context.envelope_from,
                           text->subject,
                           text->body,
                           config.hostname,
                           "autoreply." + std::to_string(msg_id) + "." + std::to_string(n) + "." + std::to_string(now),
                           now};
    auto id = common::pg::create_generated_message(tx, {"", "", config.hostname, "wroute", {context.envelope_from}},
                                                   compose_autoreply(reply, headers), "auto-reply", msg_id);
    log::info("msg={} auto-reply from {} queued as msg={}", common::qid(msg_id), mailbox, common::qid(id));
  }
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

// Routes claims[first..] in one transaction, up to and including the message
// whose list fan-outs take the transaction to max_list_members members (so a
// batch of posts to big lists is several transactions of bounded size, not one
// huge one). Returns how many claims it took (at least one); those that had
// lost their lease to another router are logged and left alone. Throws on any
// failure: nothing of them is written.
std::size_t route_chunk(pqxx::connection& conn, const RouterConfig& config, const std::vector<RoutingClaim>& claims,
                        std::size_t first, const common::pg::LeaseKeeper::Kept& kept) {
  pqxx::work tx(conn);
  common::pg::RouterDirectory directory(tx);
  prefetch_recipients(directory, claims, first);
  std::deque<MessageWork> works;  // stable addresses: each context refers to its own element
  std::vector<common::pg::RoutingPlan> plans;
  std::int64_t list_members = 0;
  for (std::size_t i = first; i < claims.size() && (i == first || list_members < config.max_list_members); ++i) {
    auto& work = works.emplace_back(tx, claims[i]);
    work.plan = plan_message(directory, config, claims[i].recipients, work.context);
    if (work.plan.hold_reason) continue;  // held below, nothing planned
    list_members += work.plan.list_members;
    plans.push_back({claims[i].lease, work.plan.deliveries, work.plan.fanouts});
  }
  std::set<std::int64_t> moved;
  if (!plans.empty())
    for (const auto& r : common::pg::finish_routing(tx, plans)) moved.insert(r.msg_id);
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
    send_autoreplies(tx, config, work);
    report_list_bounces(tx, config, work);
  }
  tx.commit();
  for (const auto& work : works)
    if (moved.count(work.claim.lease.msg_id)) log_plan(work.claim.lease.msg_id, work.plan);
  return works.size();
}

// One message in its own transaction; a failure is recorded against it.
void route_alone(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                 const RoutingClaim& claim, common::pg::LeaseKeeper::Kept& kept) {
  try {
    route_chunk(conn, config, {claim}, 0, kept);
  } catch (const pqxx::broken_connection&) {
    throw;  // the loop reconnects; our leases expire and are re-claimed
  } catch (const std::exception& e) {
    log::error("msg={} routing failed: {}", common::qid(claim.lease.msg_id), e.what());
    // Handed back: its short lease is the retry's backoff, not ours to renew.
    common::pg::record_routing_failure(conn, claim.lease, e.what(), config.max_routing_failures, queue.lease_time);
    kept.forget(claim.lease.msg_id);
  }
}

}  // namespace

int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner, common::pg::LeaseKeeper& keeper, bool reclaim_expired) {
  common::pg::configure_router_session(conn);
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
        done += route_chunk(conn, config, together, done, kept);
        keeper.progress();
      }
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      log::warn("routing a batch of {} messages failed ({}); routing them one by one", together.size() - done,
                e.what());
    }
  }
  for (std::size_t i = done; i < together.size(); ++i) {
    route_alone(conn, config, queue, together[i], kept);
    keeper.progress();
  }
  for (const auto& c : alone) {
    route_alone(conn, config, queue, c, kept);
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

}  // namespace wsmtp::router
