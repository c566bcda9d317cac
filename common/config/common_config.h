// The sections every daemon shares: [database] (how to reach PostgreSQL: the
// directory, and the queue shards of [shard NAME]) and [queue] (lease length and
// the poison-message limit that router, deliverer and reaper must agree on).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/config_file.h"

namespace wsmtp::common {

// One queue database of the group ([shard NAME]). Its id is part of every
// queue id it issues (queue_id.h), so it never changes and no two shards share
// one; `wsmtpctl db migrate` writes it into the shard's database, and every
// program refuses a database whose id is not the configured one.
struct ShardConfig {
  std::string name;
  int id = 0;
  // Share of new messages the listeners place here; 0 drains the shard (its
  // mail is still routed and delivered, none is added).
  int weight = 1;
  // May list a primary and its standbys (host=a,b target_session_attrs=read-write).
  std::string conninfo;
};

struct DatabaseConfig {
  // The directory database (domains, mailboxes, aliases, lists, users, relay
  // pools); a libpq connection string, empty means "use the PG* environment
  // variables". Passwords belong in ~/.pgpass or a service file, never here.
  std::string conninfo;
  // The queue shards, by id. Without [shard NAME] sections the directory's
  // database is the one shard, "default", id 0.
  std::vector<ShardConfig> shards;

  // True for the one-server layout: a single shard in the directory's database.
  bool single() const { return shards.size() == 1 && is_directory(shards.front()); }
  // True if shard is the directory's database (the same connection string), so
  // directory questions may be asked in the shard's own transaction.
  bool is_directory(const ShardConfig& shard) const { return shard.conninfo == conninfo; }
  // The shard with this id, or nullptr.
  const ShardConfig* shard_by_id(int id) const;
};

struct QueueConfig {
  std::chrono::seconds lease_time{300};
  int max_expired_claims = 5;
  std::chrono::seconds poll_interval{5};
  // A worker woken by NOTIFY waits this long for more work before it claims.
  std::chrono::milliseconds gather_time{20};
  // A delivery still failing temporarily this long after receipt is bounced
  // (RFC 5321 §4.5.4.1 suggests at least 4-5 days).
  std::chrono::seconds queue_lifetime{5 * 86400};
};

DatabaseConfig read_database_config(const ConfigFile& file);
QueueConfig read_queue_config(const ConfigFile& file);

}  // namespace wsmtp::common
