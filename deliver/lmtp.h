// The LMTP agent (RFC 2033): hands mailbox deliveries to an LMTP server such as
// Dovecot's, one transaction per message with all its recipients for that
// server, over a kept connection; each recipient gets its own final reply, so
// partial success maps to per-delivery results. The server is the configured
// lmtp_server (host:port or a Unix socket path) or, if none, the delivery's
// destination (the socket path stored for the mailbox). A server that does not
// offer 8BITMIME gets 8-bit mail per lmtp_eightbit (deliver/eightbit.h), as a
// relay pool's policy applies to its relays.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config.h"
#include "relay.h"
#include "smtp_client.h"
#include "transport.h"

namespace wsmtp::deliver {

// The "lmtp" transport, keyed by LMTP server (server_for).
class LmtpSessions : public Transport {
 public:
  // on_progress: called as each LMTP conversation moves on (ClientOptions).
  explicit LmtpSessions(const DeliverConfig& config, std::function<void()> on_progress = {});
  ~LmtpSessions() override;

  // The LMTP server for a delivery whose destination is `destination`.
  std::string server_for(const std::string& destination) const;

  std::string destination_key(const common::pg::DeliveryTask& task) const override {
    return server_for(task.destination);
  }
  bool shares_transactions() const override { return true; }
  bool remote() const override { return true; }

  // Delivers the jobs for `server` that may_start admits; one result per task
  // of those, in job order. Throws only for database connection failures.
  std::vector<common::pg::DeliveryResult> deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                  const std::string& server, const std::vector<DeliveryJob>& jobs,
                                                  const MayStart& may_start) override;

 private:
  common::smtp::SmtpClient& session(const std::string& server);
  std::vector<common::pg::DeliveryResult> transact(pqxx::connection& conn, common::smtp::SmtpClient& client,
                                                   const std::string& server, const DeliveryJob& job);

  const DeliverConfig& config_;
  std::function<void()> on_progress_;
  std::map<std::string, std::unique_ptr<common::smtp::SmtpClient>> sessions_;
  std::map<std::string, bool> used_this_pass_;
};

}  // namespace wsmtp::deliver
