#include "lmtp.h"

#include <optional>

#include <fmt/format.h>

#include "eightbit.h"
#include "log.h"
#include "queue_id.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;

std::pair<std::string, int> split_server(const std::string& server) {
  if (!server.empty() && server[0] == '/') return {server, 0};
  auto colon = server.rfind(':');
  return {server.substr(0, colon), std::stoi(server.substr(colon + 1))};
}

}  // namespace

LmtpSessions::LmtpSessions(const DeliverConfig& config, std::function<void()> on_progress)
    : config_(config), on_progress_(std::move(on_progress)) {}

LmtpSessions::~LmtpSessions() {
  for (auto& [server, client] : sessions_)
    if (client) client->quit();
}

std::string LmtpSessions::server_for(const std::string& destination) const {
  return config_.lmtp_server.empty() ? destination : config_.lmtp_server;
}

// The kept connection if it still answers, else a new one. Throws ClientError.
common::smtp::SmtpClient& LmtpSessions::session(const std::string& server) {
  auto& client = sessions_[server];
  bool fresh_use = !std::exchange(used_this_pass_[server], true);
  if (client && client->connected() && (!fresh_use || client->alive())) return *client;
  common::smtp::ClientOptions options;
  options.helo_name = config_.hostname;
  options.connect_timeout = config_.relay_connect_timeout;
  options.command_timeout = config_.relay_command_timeout;
  options.tls = common::smtp::TlsPolicy::none;  // LMTP runs on the local network or a socket
  options.lmtp = true;
  options.on_progress = on_progress_;
  client = std::make_unique<common::smtp::SmtpClient>(options);
  auto [host, port] = split_server(server);
  if (auto refusal = client->open(host, port))
    throw common::smtp::ClientError(fmt::format("LMTP server {} refused: {}", server, reply_detail(*refusal)));
  return *client;
}

std::vector<DeliveryResult> LmtpSessions::transact(pqxx::connection& conn, common::smtp::SmtpClient& client,
                                                   const std::string& server, const DeliveryJob& job) {
  common::smtp::Envelope envelope;
  envelope.from = job.tasks.front()->envelope_from;
  for (const auto* t : job.tasks) envelope.recipients.push_back(t->recipient);
  // As for relays (RFC 6152): a server with 8BITMIME gets the declaration and
  // the body as it is; one without gets what the lmtp_eightbit policy says.
  const bool eightbitmime = client.extensions().eightbitmime;
  envelope.declare_8bit = eightbitmime;
  const auto& prepend = job.tasks.front()->prepend_headers;
  auto eightbit = decide_8bit(conn, config_.lmtp_eightbit, *job.claim, prepend, eightbitmime, "LMTP server " + server);
  if (eightbit.refusal) return all_tasks(job, DeliveryStatus::bounced, *eightbit.refusal, config_);
  auto result = client.send(envelope, [&](const common::smtp::ChunkSink& sink) {
    stream_message(conn, *job.claim, prepend, eightbit, sink);
  });
  std::vector<DeliveryResult> out;
  for (std::size_t i = 0; i < job.tasks.size(); ++i) {
    const auto& reply = result.outcome(i);
    const auto* task = job.tasks[i];
    if (reply.is_positive())
      out.push_back(
          {task->delivery_id, DeliveryStatus::delivered, fmt::format("lmtp {}: {}", server, reply_detail(reply)), {}});
    else if (reply.is_permanent())
      out.push_back({task->delivery_id, DeliveryStatus::bounced, reply_detail(reply), {}});
    else
      out.push_back({task->delivery_id, DeliveryStatus::deferred,
                     fmt::format("lmtp {}: {}", server, reply_detail(reply)),
                     retry_delay(config_, task->attempts + 1)});
  }
  return out;
}

std::vector<DeliveryResult> LmtpSessions::deliver(pqxx::connection& conn, common::pg::DirectoryLink&,
                                                  const std::string& server, const std::vector<DeliveryJob>& jobs,
                                                  const MayStart& may_start) {
  used_this_pass_.clear();
  std::vector<DeliveryResult> results;
  // Once the server failed to connect or answer in time, the pass's other
  // jobs are deferred at once: each would wait out the same timeouts.
  std::optional<std::string> server_failure;
  for (const auto& job : jobs) {
    if (may_start && !may_start(job)) continue;
    if (server_failure) {
      for (auto& r : all_tasks(job, DeliveryStatus::deferred, *server_failure, config_)) {
        r.destination_failed = true;
        results.push_back(std::move(r));
      }
      continue;
    }
    try {
      auto& client = session(server);
      for (auto& r : transact(conn, client, server, job)) results.push_back(std::move(r));
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      // Unreachable server or a connection lost before the final replies: the
      // server has not taken the message; retry later. A client error (not
      // reading our own body) is the server's failure, not the message's.
      log::warn("msg={} LMTP to {} failed: {}", common::qid(job.claim->lease.msg_id), server, e.what());
      if (auto& client = sessions_[server]) client->quit();
      const bool server_failed = dynamic_cast<const common::smtp::ClientError*>(&e) != nullptr;
      if (server_failed) server_failure = std::string("4.4.1 ") + e.what();
      for (auto& r : all_tasks(job, DeliveryStatus::deferred, std::string("4.4.1 ") + e.what(), config_)) {
        r.destination_failed = server_failed;
        results.push_back(std::move(r));
      }
    }
  }
  return results;
}

}  // namespace wsmtp::deliver
