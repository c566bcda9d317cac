// [deliver] settings: which transports this deliverer serves, the retry schedule,
// the queue lifetime and delay warnings, and the per-transport knobs.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_file.h"
#include "config/worker_scaling.h"

namespace wsmtp::deliver {

// What 8-bit mail gets from a peer without 8BITMIME (RFC 6152 §3): a 7-bit
// quoted-printable conversion, a bounce (5.6.3), or the bytes as they are.
// Relay pools keep theirs in the database, LMTP takes [deliver] lmtp_eightbit.
enum class EightBitPolicy { convert, bounce, send };

// Every policy's name, as [deliver] lmtp_eightbit and a relay pool's eightbit_policy spell it.
inline constexpr std::pair<std::string_view, EightBitPolicy> kEightBitPolicyNames[] = {
    {"convert", EightBitPolicy::convert}, {"bounce", EightBitPolicy::bounce}, {"send", EightBitPolicy::send}};

// "convert", "bounce" or "send"; nullopt for anything else.
std::optional<EightBitPolicy> eightbit_policy_named(std::string_view name);

struct DeliverConfig {
  // Transports this deliverer serves; a mailbox host serves "maildir", a
  // relay-facing host "relay".
  std::vector<std::string> transports{"maildir"};
  int batch_size = 20;
  // The retry lane: deferred mail due again takes at most this share of each
  // claim's batch_size (at least one message), fresh mail the rest.
  int retry_share_percent = 20;
  // Backoff: retry_base * retry_factor^(attempt-1), capped at retry_max.
  std::chrono::seconds retry_base{60};
  int retry_factor = 2;
  std::chrono::seconds retry_max{4 * 3600};
  // (The queue lifetime, past which deferred deliveries bounce with 4.4.7, is
  // [queue] queue_lifetime: the reaper applies it too.)
  // One delay warning to the sender after this long; 0 disables it.
  std::chrono::seconds delay_warning_after{0};
  // Maildir: owner (a user name; empty keeps the deliverer's own) and modes of
  // the directories a delivery creates and of the message files.
  std::string maildir_owner;
  unsigned maildir_dir_mode = 0700;
  unsigned maildir_file_mode = 0600;
  // A Maildir delivery that would exceed its mailbox's quota: defer (4.2.2,
  // retried with backoff until the mailbox has room or the queue lifetime
  // ends) or bounce (5.2.2, a DSN to the sender at once). Deferring is the
  // default: a full mailbox is usually emptied by its POP3 reader soon, as
  // Exim's appendfile and Dovecot with quota_full_tempfail treat it. A message
  // larger than the whole quota bounces either way (5.2.3): no wait helps.
  enum class OverQuota { defer, bounce };
  OverQuota over_quota = OverQuota::defer;
  // mbox spools: how long to wait for the fcntl and dot locks (then defer), and
  // the age at which a dot-lock counts as left behind by a crash.
  std::chrono::seconds mbox_lock_timeout{30};
  std::chrono::seconds mbox_stale_lock_age{600};
  // Relay pools (transport "relay"): SMTP client timeouts and the roots used to
  // verify relays of pools whose tls_policy is 'required' (empty: the system's).
  std::chrono::seconds relay_connect_timeout{30};
  std::chrono::seconds relay_command_timeout{300};
  std::string relay_ca_file;
  // LMTP: the server for every "lmtp" delivery, "host:port" or a Unix socket
  // path; empty: each delivery's destination is the server's socket path.
  std::string lmtp_server;
  // LMTP servers that do not offer 8BITMIME in their LHLO reply (Dovecot does;
  // others may not): convert, bounce or send, as a relay pool's policy.
  EightBitPolicy lmtp_eightbit = EightBitPolicy::convert;
  // Workers that may deliver to one destination at once (a relay pool, an
  // LMTP server, a Maildir, an mbox spool), counted across every deliverer
  // sharing the database: below max_workers' default, so one stalled
  // destination cannot take every worker. An mbox spool takes its writers one
  // at a time under its lock anyway. A Maildir's default is high: a worker
  // holds the slots of every Maildir in its batch for the batch's local pass,
  // so a low limit idled half of four workers in a flood to 20 Maildirs
  // (24 % slower, tests/bench/deliver_fairness.py), and local writes do not
  // stall the way a silent peer does; lower it where mailboxes live on a
  // mount that can hang.
  int relay_concurrency = 2;
  int lmtp_concurrency = 2;
  int maildir_concurrency = 8;
  int mbox_concurrency = 1;
  // A destination failing as a whole (no relay of a pool reachable, an LMTP
  // server down, a mailbox directory unwritable) this many times in a row is
  // not tried for destination_backoff_base, doubling per further failure up
  // to destination_backoff_max; 0: never backed off.
  int destination_backoff_after = 2;
  std::chrono::seconds destination_backoff_base{30};
  std::chrono::seconds destination_backoff_max{3600};
  // Our name in DSNs (Reporting-MTA), Maildir file names and EHLO.
  std::string hostname;
  common::WorkerScaling scaling;  // min_workers, max_workers, backlog_per_worker, idle_time
};

DeliverConfig read_deliver_config(const common::ConfigFile& file);

// How many deferred messages one claim may take: retry_share_percent of
// batch_size, rounded up.
int retry_lane_size(const DeliverConfig& config);

// The concurrency limit for deliveries on `transport` (one of the known
// transport names); 1 for any other.
int concurrency_limit(const DeliverConfig& config, std::string_view transport);

// Backoff for the attempt-th failure (1-based), capped at retry_max.
std::chrono::seconds retry_delay(const DeliverConfig& config, int attempt);

}  // namespace wsmtp::deliver
