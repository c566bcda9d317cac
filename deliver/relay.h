// The relay-pool agent: hands the deliveries bound for a named pool to its
// relays over SMTP (smtp_client.h). One connection carries many messages,
// one transaction carries all of a message's recipients for the pool; relays are
// chosen by weight among those not marked down, and a relay that refuses the
// connection or answers 4xx/5xx to the greeting is marked down and the next one
// tried. Remote replies map to per-delivery results (partial success is normal).
// Pools, relays and the down marks are the directory's (directory_ask.h).
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
#include "transport.h"

namespace wsmtp::deliver {

// The "relay" transport, keyed by pool (the delivery's destination). Open
// connections per pool are kept between delivery passes so a steady stream of
// mail does not pay a handshake per batch.
class RelaySessions : public Transport {
 public:
  // on_progress: called as each relay conversation moves on (ClientOptions).
  explicit RelaySessions(const DeliverConfig& config, std::function<void()> on_progress = {});
  ~RelaySessions() override;

  std::string destination_key(const common::pg::DeliveryTask& task) const override { return task.destination; }
  bool shares_transactions() const override { return true; }
  bool remote() const override { return true; }

  // Delivers the jobs bound for `pool` that may_start admits; returns one
  // result per task of those, in job order. Throws only for database
  // connection failures.
  std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                  const std::string& pool, const std::vector<DeliveryJob>& jobs,
                                                  const MayStart& may_start) override;

 private:
  struct Session {
    std::unique_ptr<common::smtp::SmtpClient> client;
    common::pg::RelayHost relay;
    int messages = 0;
    long pass = 0;  // the deliver() call that last used it
  };
  Session* connect(pqxx::connection& conn, common::pg::DirectoryLink& directory, const common::pg::RelayPool& pool,
                   std::vector<bool>& failed);
  std::vector<common::pg::DeliveryResult> transact(pqxx::connection& conn, const common::pg::RelayPool& pool,
                                                   Session& session, const DeliveryJob& job);

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
std::vector<common::pg::DeliveryResult> all_tasks(const DeliveryJob& job, common::pg::DeliveryStatus status,
                                                  const std::string& detail, const DeliverConfig& config);

// "550 5.1.1 text" (multi-line text joined), as stored in last_error and DSNs.
std::string reply_detail(const common::smtp::Reply& reply);

}  // namespace wsmtp::deliver
