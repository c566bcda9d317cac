// The relay-pool agent: hands the deliveries bound for a named pool to its
// relays over SMTP (smtp_client.h). One connection carries many messages,
// one transaction carries all of a message's recipients for the pool; relays are
// chosen by weight among those not marked down, and a relay that refuses the
// connection or answers 4xx/5xx to the greeting is marked down and the next one
// tried. Remote replies map to per-delivery results (partial success is normal).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config.h"
#include "db/relay_pools.h"
#include "pg/transitions.h"
#include "smtp_client.h"

namespace wsmtp::deliver {

// One message's deliveries for one pool.
struct RelayJob {
  const common::pg::DeliveryClaim* claim = nullptr;
  std::vector<const common::pg::DeliveryTask*> tasks;
};

// Asked before each job is started: false skips it, and its tasks get no
// result (they stay pending). The worker says false for a message whose lease
// was lost or that was held or deleted while the batch was under way.
using MayStart = std::function<bool(const RelayJob&)>;

// Open connections per pool, kept between delivery passes so a steady stream of
// mail does not pay a handshake per batch.
class RelaySessions {
 public:
  // on_progress: called as each relay conversation moves on (ClientOptions).
  explicit RelaySessions(const DeliverConfig& config, std::function<void()> on_progress = {});
  ~RelaySessions();

  // Delivers the jobs bound for `pool` that may_start admits; returns one
  // result per task of those, in job order. Throws only for database
  // connection failures.
  std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, const std::string& pool,
                                                  const std::vector<RelayJob>& jobs, const MayStart& may_start = {});

 private:
  struct Session {
    std::unique_ptr<common::smtp::SmtpClient> client;
    common::pg::RelayHost relay;
    int messages = 0;
    long pass = 0;  // the deliver() call that last used it
  };
  Session* connect(pqxx::connection& conn, const common::pg::RelayPool& pool, std::vector<bool>& failed);
  std::vector<common::pg::DeliveryResult> transact(pqxx::connection& conn, const common::pg::RelayPool& pool,
                                                   Session& session, const RelayJob& job);

  std::string unreachable_detail(const common::pg::RelayPool& pool) const;

  const DeliverConfig& config_;
  std::function<void()> on_progress_;
  std::map<std::string, Session> sessions_;
  std::string last_problem_;  // the latest connection failure of the current deliver() call
  std::mt19937 rng_;
  long pass_ = 0;
};

// Weighted choice among relays that are neither down nor excluded; -1 if none.
int pick_relay(const std::vector<common::pg::RelayHost>& relays, const std::vector<bool>& excluded, std::mt19937& rng);

// The same result for every task of a job (a refusal or failure that covers the
// whole transaction); deferred ones get the next retry delay.
std::vector<common::pg::DeliveryResult> all_tasks(const RelayJob& job, common::pg::DeliveryStatus status,
                                                  const std::string& detail, const DeliverConfig& config);

// "550 5.1.1 text" (multi-line text joined), as stored in last_error and DSNs.
std::string reply_detail(const common::smtp::Reply& reply);

}  // namespace wsmtp::deliver
