// DirectoryLinks for database tests: the one-server layout (directory
// questions in the shard's own connection) and a shard whose directory is
// another database.
#pragma once

#include <string>

#include "config/common_config.h"
#include "pg/directory_link.h"

namespace wsmtp::test {

// The layout of every test before queue shards: one database is both.
inline common::pg::DirectoryLink one_server_link(const std::string& conninfo) {
  const common::DatabaseConfig database{.conninfo = conninfo,
                                        .shards = {{.name = "default", .id = 0, .weight = 1, .conninfo = conninfo}}};
  return common::pg::DirectoryLink(database, database.shards.front());
}

// A shard (shard_conninfo) whose directory lives in directory_conninfo.
inline common::pg::DirectoryLink separate_directory_link(const std::string& directory_conninfo,
                                                         const std::string& shard_conninfo, int shard_id = 1) {
  const common::DatabaseConfig database{
      .conninfo = directory_conninfo,
      .shards = {{.name = "q" + std::to_string(shard_id), .id = shard_id, .weight = 1, .conninfo = shard_conninfo}}};
  return common::pg::DirectoryLink(database, database.shards.front());
}

}  // namespace wsmtp::test
