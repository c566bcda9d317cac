#include "route.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "address.h"
#include "autoreply.h"
#include "expand.h"
#include "log.h"
#include "pg/directory.h"
#include "pg/router_autoreply.h"
#include "pg/router_directory.h"
#include "pg/router_queue.h"
#include "pg/transitions.h"

namespace wsmtp::router {
namespace {

using common::mail::HeaderBlock;
using Descriptions = std::map<std::string, common::AddressInfo>;

// The directory as seen by one message: the batch's envelope recipients were
// described up front in one query; anything else (alias targets, members) is
// asked inside the message's transaction.
class BatchDirectory final : public common::DirectoryLookup {
 public:
  BatchDirectory(common::DirectoryLookup& inner, const Descriptions& known) : inner_(inner), known_(known) {}
  bool is_local_domain(const std::string& d) override { return inner_.is_local_domain(d); }
  std::optional<common::MailboxTarget> find_mailbox(const std::string& a) override { return inner_.find_mailbox(a); }
  std::vector<std::string> alias_targets(const std::string& a) override { return inner_.alias_targets(a); }
  bool is_list_member(const std::string& l, const std::string& a) override { return inner_.is_list_member(l, a); }
  std::vector<std::string> list_members_to_expand(const std::string& l) override {
    return inner_.list_members_to_expand(l);
  }
  common::AddressInfo describe(const std::string& address, const std::string& domain) override {
    auto it = known_.find(address);
    return it != known_.end() ? it->second : inner_.describe(address, domain);
  }

 private:
  common::DirectoryLookup& inner_;
  const Descriptions& known_;
};

// One round trip for every envelope recipient of the batch.
Descriptions describe_batch(pqxx::connection& conn, const std::vector<common::pg::RoutingClaim>& claims) {
  std::vector<std::string> addresses, domains;
  for (const auto& c : claims)
    for (const auto& r : c.recipients)
      if (auto parsed = common::parse_mailbox(r, true)) {
        addresses.push_back(parsed->lookup_key());
        domains.push_back(common::to_lower_ascii(parsed->domain));
      }
  pqxx::nontransaction tx(conn);
  return common::pg::describe_addresses(tx, addresses, domains);
}

struct Plan {
  std::vector<common::pg::PlannedDelivery> deliveries;
  std::vector<common::pg::ListFanout> fanouts;
  std::vector<std::pair<std::string, std::string>> autoreplies;  // mailbox, original recipient
};

Plan plan_message(common::DirectoryLookup& directory, const RouterConfig& config, const common::pg::RoutingClaim& claim,
                  const MessageContext& context) {
  ExpansionLimits limits{config.max_alias_depth, config.max_expansion, config.relay_pool};
  Plan plan;
  std::vector<common::pg::PlannedDelivery> candidates;
  // A list reached twice fans out once, and a mailbox answers a sender once.
  std::set<std::string> lists, answered;
  for (const auto& rcpt : claim.recipients) {
    auto expansion = expand_recipient(directory, rcpt, context, limits);
    for (auto& r : expansion.recipients) {
      common::pg::PlannedDelivery p{r.address,         rcpt,           r.transport, r.destination, std::nullopt,
                                    r.prepend_headers, r.envelope_from};
      if (r.transport == kBounceTransport) p.bounce_reason = r.bounce_reason;
      candidates.push_back(std::move(p));
    }
    for (auto& l : expansion.lists)
      if (lists.insert(l.list_address).second)
        plan.fanouts.push_back({l.list_address, rcpt, l.prepend_headers, l.envelope_from, config.relay_pool});
    for (auto& m : expansion.autoreply_mailboxes)
      if (answered.insert(m).second) plan.autoreplies.emplace_back(m, rcpt);
  }
  // The same final mailbox reached twice gets one copy; a copy addressed to it
  // directly wins over a list's (the list fan-outs, inserted after the plan,
  // skip members already planned).
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const auto& p) { return !p.envelope_from_override.has_value(); });
  std::set<std::string> planned;
  for (auto& p : candidates)
    if (planned.insert(p.recipient + '\0' + p.transport + '\0' + p.destination).second)
      plan.deliveries.push_back(std::move(p));
  return plan;
}

// Queues the vacation replies that RFC 3834 allows, in the routing transaction.
void send_autoreplies(pqxx::transaction_base& tx, const RouterConfig& config, const common::pg::RoutingClaim& claim,
                      const MessageContext& context, const Plan& plan) {
  if (plan.autoreplies.empty() || autoreply_sender_excluded(context.envelope_from)) return;
  const HeaderBlock& headers = context.headers();
  if (autoreply_message_excluded(headers)) return;
  int n = 0;
  for (const auto& [mailbox, original_rcpt] : plan.autoreplies) {
    ++n;
    if (mailbox == context.envelope_from || !autoreply_direct_recipient(headers, mailbox, original_rcpt)) continue;
    auto text = common::pg::claim_autoreply(tx, mailbox, context.envelope_from);
    if (!text) continue;
    const std::time_t now = std::time(nullptr);
    AutoReplyMessage reply{
        mailbox,
        context.envelope_from,
        text->subject,
        text->body,
        config.hostname,
        "autoreply." + std::to_string(claim.lease.msg_id) + "." + std::to_string(n) + "." + std::to_string(now),
        now};
    auto id = common::pg::create_generated_message(tx, {"", "", config.hostname, "wroute", {context.envelope_from}},
                                                   compose_autoreply(reply, headers));
    log::info("msg={} auto-reply from {} queued as msg={}", claim.lease.msg_id, mailbox, id);
  }
}

void log_plan(std::int64_t msg_id, const Plan& plan) {
  for (const auto& p : plan.deliveries)
    log::info("msg={} route rcpt={} orig={} transport={} dest={}{}", msg_id, p.recipient, p.original_rcpt, p.transport,
              p.destination, p.bounce_reason ? " bounce=" + *p.bounce_reason : std::string());
  for (const auto& f : plan.fanouts)
    log::info("msg={} route list={} orig={} envelope_from={}", msg_id, f.list_address, f.original_rcpt,
              f.envelope_from);
}

void route_one(pqxx::connection& conn, const RouterConfig& config, const common::pg::RoutingClaim& claim,
               const Descriptions& known) {
  pqxx::work tx(conn);
  common::pg::PgDirectoryLookup database(tx);
  BatchDirectory directory(database, known);
  std::optional<HeaderBlock> headers;
  MessageContext context{common::to_lower_ascii(claim.envelope_from), [&]() -> const HeaderBlock& {
                           if (!headers) headers = common::pg::read_message_headers(tx, claim.lease.msg_id);
                           return *headers;
                         }};
  auto plan = plan_message(directory, config, claim, context);
  if (!common::pg::finish_routing(tx, claim.lease, plan.deliveries, plan.fanouts)) {
    log::warn("msg={} lease lost before routing finished; another router owns it", claim.lease.msg_id);
    return;  // tx rolls back
  }
  send_autoreplies(tx, config, claim, context, plan);
  tx.commit();
  log_plan(claim.lease.msg_id, plan);
}

}  // namespace

int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner) {
  common::pg::ClaimOptions options{owner, queue.lease_time, config.batch_size, queue.max_expired_claims};
  auto claims = common::pg::claim_for_routing(conn, options);
  Descriptions known;
  try {
    if (!claims.empty()) known = describe_batch(conn, claims);
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    // Only an optimisation: each message then asks for itself.
    log::warn("describing the batch's recipients failed: {}", e.what());
  }
  for (const auto& claim : claims) {
    try {
      route_one(conn, config, claim, known);
    } catch (const pqxx::broken_connection&) {
      throw;  // the loop reconnects; our leases expire and are re-claimed
    } catch (const std::exception& e) {
      log::error("msg={} routing failed: {}", claim.lease.msg_id, e.what());
      common::pg::record_routing_failure(conn, claim.lease, e.what(), config.max_routing_failures, queue.lease_time);
    }
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
