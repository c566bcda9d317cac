// A queue shard's identity in its own database (migration 023): written once
// by `wsmtpctl db migrate`, checked by every program when it connects, so mail
// is never stored in, routed from or reported for the wrong database (a
// conninfo pointing elsewhere, a standby of another shard promoted).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <pqxx/pqxx>

#include "config/common_config.h"

namespace wsmtp::common::pg {

struct ShardIdentity {
  std::string name;
  int id = 0;
};

// Thrown when a database is not the shard the configuration names.
class WrongShard : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The identity claimed in conn's database, if any.
std::optional<ShardIdentity> read_shard_identity(pqxx::connection& conn);

// Claims shard's identity for conn's database (first time), or checks it.
// Throws WrongShard naming both when the database is another shard's or holds
// mail outside the shard's id range.
void claim_shard_identity(pqxx::connection& conn, const ShardConfig& shard);

// Throws WrongShard unless conn's database is shard. An unclaimed database is
// accepted only in the one-server layout (database.single()), where it is
// shard 0 with the ids it always had.
void require_shard_identity(pqxx::connection& conn, const DatabaseConfig& database, const ShardConfig& shard);

}  // namespace wsmtp::common::pg
