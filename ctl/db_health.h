// `wsmtpctl db status` for each database of the group: what was read from it
// (reachable, schema versions, the shard identity it claims) and what is wrong
// with it. Pure: the readings come in as values, so the verdicts are
// unit-tested; db_commands.cpp reads and prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pg/schema_migrations.h"

namespace wsmtp::ctl {

struct ClaimedIdentity {
  std::string name;
  int id = 0;
};

struct DatabaseHealth {
  std::string name;             // "directory" or the shard's name
  bool is_directory = false;    // the directory's database
  bool is_shard = false;        // holds a configured shard (in the one-server layout, both)
  std::string configured_name;  // shard: as configured
  int configured_id = 0;        // shard: as configured
  bool reachable = false;
  std::string error;  // why not reachable
  int database_version = 0;
  int binary_version = 0;
  std::vector<common::pg::Migration> pending;
  // What its shard_identity holds; nullopt when unclaimed or the schema is
  // older than the table (migration 023).
  std::optional<ClaimedIdentity> claimed;
};

// "directory", "shard" or "directory+shard".
std::string database_role(const DatabaseHealth& h);

// One sentence per thing wrong with h (empty: healthy). single: the one-server
// layout, whose shard may be unclaimed (it is id 0 with the ids it always had).
std::vector<std::string> health_problems(const DatabaseHealth& h, bool single);

}  // namespace wsmtp::ctl
