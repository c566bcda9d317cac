#include "relay.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "directory_ask.h"
#include "eightbit.h"
#include "log.h"
#include "queue_id.h"

namespace wsmtp::deliver {
namespace {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;
using common::smtp::Reply;

common::smtp::TlsPolicy tls_policy(const std::string& name) {
  if (name == "none") return common::smtp::TlsPolicy::none;
  if (name == "required") return common::smtp::TlsPolicy::required;
  return common::smtp::TlsPolicy::opportunistic;
}

std::string relay_name(const common::pg::RelayHost& r) { return fmt::format("{}:{}", r.host, r.port); }

// A pool's eightbit_policy column; the schema's CHECK admits only the three
// names, and anything else has always meant the default, convert.
EightBitPolicy pool_eightbit_policy(const common::pg::RelayPool& pool) {
  return eightbit_policy_named(pool.eightbit_policy).value_or(EightBitPolicy::convert);
}

// The mark in the directory is for the other deliverers: this pass already
// excludes the relay. A directory of its own that cannot take it costs them
// one failed connection each, so it is logged and the pass goes on.
void mark_down(pqxx::connection& conn, common::pg::DirectoryLink& directory, const std::string& pool,
               const common::pg::RelayHost& relay, std::chrono::seconds down_time, const std::string& reason) {
  try {
    ask_directory(directory, conn,
                  [&](pqxx::connection& dir) { common::pg::mark_relay_down(dir, pool, relay, down_time, reason); });
  } catch (const DirectoryUnavailable& e) {
    log::warn("relay {} of pool {} failed ({}) but was not marked down: {}", relay_name(relay), pool, reason, e.what());
  }
}

// Every task of the jobs deferred with one detail (the pool is unknown or
// could not be read): an operator or the directory's return fixes it.
std::vector<DeliveryResult> defer_all(const std::vector<DeliveryJob>& jobs, const std::string& detail,
                                      const DeliverConfig& config) {
  std::vector<DeliveryResult> results;
  for (const auto& job : jobs)
    for (auto& r : all_tasks(job, DeliveryStatus::deferred, detail, config)) results.push_back(std::move(r));
  return results;
}

}  // namespace

std::vector<DeliveryResult> all_tasks(const DeliveryJob& job, DeliveryStatus status, const std::string& detail,
                                      const DeliverConfig& config) {
  std::vector<DeliveryResult> out;
  for (const auto* t : job.tasks)
    out.push_back(
        {t->delivery_id, status, detail,
         status == DeliveryStatus::deferred ? retry_delay(config, t->attempts + 1) : std::chrono::seconds(0)});
  return out;
}

std::string reply_detail(const Reply& reply) {
  std::string text = reply.text;
  for (auto& c : text)
    if (c == '\n') c = ' ';
  if (reply.status.present()) return fmt::format("{} {} {}", reply.code, reply.status.str(), text);
  return fmt::format("{} {}", reply.code, text);
}

int pick_relay(const std::vector<common::pg::RelayHost>& relays, const std::vector<bool>& tried, std::mt19937& rng) {
  long total = 0;
  for (std::size_t i = 0; i < relays.size(); ++i)
    if (!tried[i] && !relays[i].down) total += relays[i].weight;
  if (total <= 0) return -1;
  long point = std::uniform_int_distribution<long>(0, total - 1)(rng);
  for (std::size_t i = 0; i < relays.size(); ++i) {
    if (tried[i] || relays[i].down) continue;
    if (point < relays[i].weight) return static_cast<int>(i);
    point -= relays[i].weight;
  }
  return -1;
}

RelaySessions::RelaySessions(const DeliverConfig& config, std::function<void()> on_progress)
    : config_(config), on_progress_(std::move(on_progress)), rng_(std::random_device{}()) {}

RelaySessions::~RelaySessions() {
  for (auto& [name, session] : sessions_)
    if (session.client) session.client->quit();
}

// A session to a live relay of the pool: the kept one if it still answers,
// otherwise a new connection to a relay chosen by weight; refusing relays are
// marked down for everyone and the next is tried. nullptr if none is reachable.
RelaySessions::Session* RelaySessions::connect(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                               const common::pg::RelayPool& pool, std::vector<bool>& failed) {
  auto& session = sessions_[pool.name];
  // A kept connection serves only while its relay is still in the pool and up:
  // an operator who removes a relay (or TLS settings that changed it) must
  // not see it used until the connection happens to close.
  const bool still_listed = std::any_of(pool.relays.begin(), pool.relays.end(), [&](const common::pg::RelayHost& r) {
    return r.host == session.relay.host && r.port == session.relay.port && !r.down;
  });
  if (session.client && session.client->connected() && still_listed &&
      session.messages < pool.max_messages_per_connection) {
    // Kept from an earlier pass: it may have timed out while idle.
    if (std::exchange(session.pass, pass_) == pass_ || session.client->alive()) return &session;
  }
  session.pass = pass_;
  if (session.client) session.client->quit();
  common::smtp::ClientOptions options;
  options.helo_name = config_.hostname;
  options.connect_timeout = config_.relay_connect_timeout;
  options.command_timeout = config_.relay_command_timeout;
  options.tls = tls_policy(pool.tls_policy);
  options.ca_file = config_.relay_ca_file;
  options.on_progress = on_progress_;
  session.client = std::make_unique<common::smtp::SmtpClient>(options);
  session.messages = 0;
  // Relays that failed earlier in this pass stay excluded; each is tried once here.
  std::vector<bool> excluded = failed;
  for (int i; (i = pick_relay(pool.relays, excluded, rng_)) >= 0;) {
    excluded[static_cast<std::size_t>(i)] = true;
    const auto& relay = pool.relays[static_cast<std::size_t>(i)];
    std::string problem;
    try {
      auto refusal = session.client->open(relay.host, relay.port);
      if (!refusal) {
        session.relay = relay;
        log::debug("relay {} of pool {} connected (tls={})", relay_name(relay), pool.name,
                   session.client->extensions().tls_active);
        return &session;
      }
      problem = relay_name(relay) + " refused: " + reply_detail(*refusal);
    } catch (const common::smtp::ClientError& e) {
      problem = e.what();
    }
    last_problem_ = problem;
    failed[static_cast<std::size_t>(i)] = true;
    mark_down(conn, directory, pool.name, relay, pool.down_time, problem);
  }
  session.client.reset();
  return nullptr;
}

std::vector<DeliveryResult> RelaySessions::transact(pqxx::connection& conn, const common::pg::RelayPool& pool,
                                                    Session& session, const DeliveryJob& job) {
  auto& client = *session.client;
  common::smtp::Envelope envelope;
  envelope.from = job.tasks.front()->envelope_from;
  for (const auto* t : job.tasks) envelope.recipients.push_back(t->recipient);
  envelope.size = static_cast<std::uint64_t>(job.claim->size) + job.tasks.front()->prepend_headers.size();
  const auto& ext = client.extensions();
  if (ext.size_limit > 0 && envelope.size > ext.size_limit)
    return all_tasks(job, DeliveryStatus::bounced,
                     fmt::format("5.3.4 message size {} exceeds the limit {} of relay {}", envelope.size,
                                 ext.size_limit, relay_name(session.relay)),
                     config_);
  // RFC 6152: declaring BODY=8BITMIME for a 7-bit message is harmless, so a
  // relay with 8BITMIME gets the declaration without a scan; only a relay
  // without it makes us look at the body.
  envelope.declare_8bit = ext.eightbitmime;
  const auto& prepend = job.tasks.front()->prepend_headers;
  auto eightbit = decide_8bit(conn, pool_eightbit_policy(pool), *job.claim, prepend, ext.eightbitmime,
                              "relay " + relay_name(session.relay));
  if (eightbit.refusal) return all_tasks(job, DeliveryStatus::bounced, *eightbit.refusal, config_);
  if (eightbit.convert) envelope.size = eightbit.convert->converted_size;
  auto result = client.send(envelope, [&](const common::smtp::ChunkSink& sink) {
    stream_message(conn, *job.claim, prepend, eightbit, sink);
  });
  ++session.messages;
  std::vector<DeliveryResult> out;
  for (std::size_t i = 0; i < job.tasks.size(); ++i) {
    const auto& reply = result.outcome(i);
    const auto* task = job.tasks[i];
    auto detail = fmt::format("relay {}: {}", relay_name(session.relay), reply_detail(reply));
    if (reply.is_positive())
      out.push_back({task->delivery_id, DeliveryStatus::delivered, detail, {}});
    else if (reply.is_permanent())
      out.push_back({task->delivery_id, DeliveryStatus::bounced, reply_detail(reply), {}});
    else
      out.push_back({task->delivery_id, DeliveryStatus::deferred, detail, retry_delay(config_, task->attempts + 1)});
  }
  // 421: the server is closing the channel (RFC 5321 §3.8); don't reuse it.
  if (result.mail.code == 421 || (result.data && result.data->code == 421)) client.quit();
  return out;
}

// Why no relay of the pool took the connection: the last failure seen in this
// pass, or the reason the relays were marked down by an earlier one.
std::string RelaySessions::unreachable_detail(const common::pg::RelayPool& pool) const {
  std::string why = last_problem_;
  for (const auto& relay : pool.relays)
    if (why.empty() && relay.down && !relay.last_error.empty())
      why = fmt::format("{} marked down: {}", relay_name(relay), relay.last_error);
  if (why.empty()) why = pool.relays.empty() ? "the pool has no relay with a weight" : "every relay is marked down";
  return fmt::format("4.4.1 no relay of pool {} is reachable; last error: {}", pool.name, why);
}

std::vector<DeliveryResult> RelaySessions::deliver(pqxx::connection& conn, common::pg::DirectoryLink& directory,
                                                   const std::string& pool_name, const std::vector<DeliveryJob>& jobs,
                                                   const MayStart& may_start) {
  std::vector<DeliveryResult> results;
  ++pass_;
  std::optional<common::pg::RelayPool> pool;
  try {
    pool = ask_directory(directory, conn,
                         [&](pqxx::connection& dir) { return common::pg::load_relay_pool(dir, pool_name); });
  } catch (const DirectoryUnavailable& e) {
    // Not the pool's fault: no destination backoff, only the tasks' own retry.
    log::warn("relay pool {} not read ({}); {} messages deferred", pool_name, e.what(), jobs.size());
    return defer_all(jobs, "4.3.0 relay pool " + pool_name + " not read: " + e.what(), config_);
  }
  if (!pool) {
    // A routing/config mismatch an operator can fix: keep the mail.
    log::error("no relay pool named '{}'; {} messages deferred", pool_name, jobs.size());
    return defer_all(jobs, "4.3.5 no relay pool named " + pool_name, config_);
  }
  std::vector<bool> failed(pool->relays.size(), false);
  last_problem_.clear();
  for (const auto& job : jobs) {
    if (may_start && !may_start(job)) continue;
    Session* session = connect(conn, directory, *pool, failed);
    if (!session) {
      for (auto& r : all_tasks(job, DeliveryStatus::deferred, unreachable_detail(*pool), config_)) {
        r.destination_failed = true;
        results.push_back(std::move(r));
      }
      continue;
    }
    try {
      for (auto& r : transact(conn, *pool, *session, job)) results.push_back(std::move(r));
    } catch (const common::smtp::ClientError& e) {
      // The connection broke before the relay answered the final dot. Until it
      // answers, the relay has not taken the message (RFC 5321 §6.1), so it is
      // retried later; if the break came after the final dot, the relay may
      // have kept it anyway, and the error says so.
      log::warn("msg={} relay {} failed mid-transaction: {}", common::qid(job.claim->lease.msg_id),
                relay_name(session->relay), e.what());
      mark_down(conn, directory, pool_name, session->relay, pool->down_time, e.what());
      for (std::size_t i = 0; i < pool->relays.size(); ++i)
        if (pool->relays[i].host == session->relay.host && pool->relays[i].port == session->relay.port)
          failed[i] = true;
      session->client->quit();
      for (auto& r : all_tasks(job, DeliveryStatus::deferred, std::string("4.4.2 ") + e.what(), config_))
        results.push_back(std::move(r));
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      // Reading the body failed: the client dropped the connection without the
      // final dot, so the relay discards the half message; retry later.
      log::error("msg={} relay transaction aborted: {}", common::qid(job.claim->lease.msg_id), e.what());
      session->client->quit();
      for (auto& r : all_tasks(job, DeliveryStatus::deferred, std::string("4.3.0 ") + e.what(), config_))
        results.push_back(std::move(r));
    }
  }
  return results;
}

}  // namespace wsmtp::deliver
