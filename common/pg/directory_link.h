// Where a program working on one queue shard asks the directory (domains,
// mailboxes, aliases, lists, users, relay pools): in the shard's own
// connection when the shard's database is the directory's (the one-server
// layout: no second connection, no second transaction, no added round trip),
// else on a connection of its own, made on first use and again after it broke.
#pragma once

#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "config/common_config.h"

namespace wsmtp::common::pg {

class DirectoryLink {
 public:
  DirectoryLink(const DatabaseConfig& database, const ShardConfig& shard)
      : conninfo_(database.conninfo), shared_(database.is_directory(shard)) {}

  // True when directory questions go to the shard's own connection (and may
  // be asked inside the shard's transaction).
  bool shared() const { return shared_; }

  // The directory's connection: shard_conn itself when shared. Throws
  // pqxx::broken_connection when the directory cannot be reached.
  pqxx::connection& connection(pqxx::connection& shard_conn);

  // Drops the own connection (after a connection error), so the next use
  // connects again.
  void reset() { own_.reset(); }

 private:
  std::string conninfo_;
  bool shared_;
  std::unique_ptr<pqxx::connection> own_;
};

}  // namespace wsmtp::common::pg
