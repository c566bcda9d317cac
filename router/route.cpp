#include "route.h"

#include <set>

#include "expand.h"
#include "log.h"
#include "pg/directory.h"
#include "pg/transitions.h"

namespace wsmtp::router {
namespace {

std::vector<common::pg::PlannedDelivery> plan_message(pqxx::transaction_base& tx, const RouterConfig& config,
                                                      const common::pg::RoutingClaim& claim) {
  common::pg::PgDirectoryLookup directory(tx);
  ExpansionLimits limits{config.max_alias_depth, config.max_expansion, config.relay_pool};
  std::vector<common::pg::PlannedDelivery> plan;
  // The same final mailbox reached from two envelope recipients gets one copy.
  std::set<std::string> planned;
  for (const auto& rcpt : claim.recipients) {
    for (auto& r : expand_recipient(directory, rcpt, limits)) {
      if (!planned.insert(r.address + '\0' + r.transport + '\0' + r.destination).second) continue;
      common::pg::PlannedDelivery p{r.address, rcpt, r.transport, r.destination, std::nullopt};
      if (r.transport == kBounceTransport) p.bounce_reason = r.bounce_reason;
      plan.push_back(std::move(p));
    }
  }
  return plan;
}

}  // namespace

int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner) {
  common::pg::ClaimOptions options{owner, queue.lease_time, config.batch_size, queue.max_expired_claims};
  auto claims = common::pg::claim_for_routing(conn, options);
  for (const auto& claim : claims) {
    try {
      pqxx::work tx(conn);
      auto plan = plan_message(tx, config, claim);
      if (!common::pg::finish_routing(tx, claim.lease, plan)) {
        log::warn("msg={} lease lost before routing finished; another router owns it", claim.lease.msg_id);
        continue;  // tx rolls back
      }
      tx.commit();
      for (const auto& p : plan)
        log::info("msg={} route rcpt={} orig={} transport={} dest={}{}", claim.lease.msg_id, p.recipient,
                  p.original_rcpt, p.transport, p.destination,
                  p.bounce_reason ? " bounce=" + *p.bounce_reason : std::string());
    } catch (const pqxx::broken_connection&) {
      throw;  // the loop reconnects; our leases expire and are re-claimed
    } catch (const std::exception& e) {
      log::error("msg={} routing failed: {}; will retry after the lease expires", claim.lease.msg_id, e.what());
    }
  }
  return static_cast<int>(claims.size());
}

}  // namespace wsmtp::router
