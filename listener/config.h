// The [listener] section of the configuration file as a plain struct: where to
// listen, how big and how many, how long to wait, who may relay. Everything is
// checked here, before a socket is bound or the database is opened.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backlog.h"
#include "cidr.h"
#include "config/config_file.h"
#include "milter/milter_spec.h"

namespace wsmtp::listener {

struct ListenAddress {
  IpAddress address;
  std::uint16_t port = 0;
  std::string str() const;
};

struct ListenerConfig {
  std::vector<ListenAddress> listen;  // "127.0.0.1:2525, [::1]:2525"
  std::string hostname;               // our name in the greeting and Received:
  std::uint64_t max_message_size = 25ull << 20;
  std::size_t max_recipients = 100;           // RFC 5321 §4.5.3.1.8: at least 100
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2.7: 5 minutes
  std::chrono::seconds data_timeout{600};     // per data block; §4.5.3.2.6 allows 10 minutes at the end
  // Deadlines that a client trickling bytes cannot push back (deadlines.h):
  std::chrono::seconds command_deadline{300};   // for a whole command line, idle time before it included
  std::uint64_t min_data_rate = 500;            // bytes/s a message must average after data_timeout; 0: off
  std::chrono::seconds max_session_time{3600};  // then 421 at the next command; 0: off
  int max_connections = 1000;
  int max_connections_per_client = 20;
  int max_errors = 10;
  int store_connections = 4;  // database worker threads, one connection each
  // AUTH password checks (argon2id, ~0.1 s and 64 MiB each) run on their own
  // threads, each with its own connection, so they never hold up RCPTs and
  // commits; beyond auth_check_queue waiting checks AUTH is answered 454 4.7.0.
  int auth_check_threads = 2;
  int auth_check_queue = 16;
  std::vector<Cidr> trusted_networks;  // may relay; empty: nobody may
  // Exempt from max_connections_per_client, max_connection_rate, max_errors and
  // the tarpit (Postfix's smtpd_client_event_limit_exceptions); not from
  // max_connections or the AUTH failure limits. Default: loopback and trusted_networks.
  std::vector<Cidr> limit_exceptions;
  std::size_t max_line_length = 1000;     // RFC 5321 §4.5.3.1.6, CRLF included; see body_filter.h
  int max_received_headers = 50;          // hop limit (Postfix hopcount_limit): more is a loop, 554 5.4.6
  int max_auth_failures = 3;              // per session, then 421
  int max_auth_failures_per_client = 10;  // per address across sessions within the window; 0: off
  std::chrono::seconds auth_failure_window{600};
  int tarpit_after_errors = 3;  // from this many errors on, each error reply is delayed
  std::chrono::seconds tarpit_delay{1};
  int max_connection_rate = 60;  // new connections per client address per minute; 0: no limit
  // IPv6 clients are counted by this prefix for every per-client limit (client_limits.h).
  int ipv6_limit_prefix = 64;
  std::chrono::seconds shutdown_grace{10};        // SIGTERM: how long running sessions may finish
  std::chrono::seconds recipient_cache_time{10};  // known local recipients remembered this long; 0: off
  // The queue's disk (Postfix's queue_minfree): while pg_database_size() is at
  // least queue_max_size, MAIL gets 452 4.3.1. 0: off, the default, because
  // only the operator knows how big the database's disk is. Sampled by one
  // thread every queue_size_check_interval (queue_watch.h), never per command.
  std::uint64_t queue_max_size = 0;
  std::chrono::seconds queue_size_check_interval{5};
  // Backpressure (backlog.h): undelivered messages per sender domain, client,
  // authenticated user and trusted client before MAIL and RCPT get 451 4.7.1.
  // Read every backlog_check_interval by one thread (backlog_watch.h), never
  // per command, so a sender may go over by what it sends in one interval.
  BacklogQuotas backlog_quotas;
  std::chrono::seconds backlog_check_interval{1};
  int loops = 0;              // event loops (threads); 0 in the file: one per core
  std::string tls_cert_file;  // PEM chain; with tls_key_file enables STARTTLS
  std::string tls_key_file;
  // Milters, applied in order (milter/chain.h); empty: none. Shared with the
  // sessions' chains, so a reload never pulls the list from under one.
  std::shared_ptr<const milter::MilterSpecs> milters = std::make_shared<const milter::MilterSpecs>();

  bool tls_enabled() const { return !tls_cert_file.empty(); }

  // True if address may relay (is inside one of trusted_networks).
  bool is_trusted(const IpAddress& address) const;
  // True if address is inside one of limit_exceptions.
  bool is_limit_exempt(const IpAddress& address) const;
};

// Parses "host:port" with an IPv4 host or a bracketed IPv6 host.
// Returns false (leaving out untouched) on any syntax error.
bool parse_listen_address(const std::string& text, ListenAddress& out);

// Reads [listener]. Throws common::ConfigError naming the file, line and key for a
// bad value or an unknown key.
ListenerConfig read_listener_config(const common::ConfigFile& file);

}  // namespace wsmtp::listener
