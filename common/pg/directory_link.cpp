#include "pg/directory_link.h"

#include "pg/connection.h"

namespace wsmtp::common::pg {

pqxx::connection& DirectoryLink::connection(pqxx::connection& shard_conn) {
  if (shared_) return shard_conn;
  if (!own_ || !own_->is_open()) own_ = connect(conninfo_);
  return *own_;
}

}  // namespace wsmtp::common::pg
