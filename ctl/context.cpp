#include "context.h"

#include "config/common_config.h"
#include "pg/connection.h"

namespace wsmtp::ctl {

pqxx::connection& Context::db() {
  if (!conn_) {
    auto file = common::load_config(options);
    auto config = common::read_database_config(file);
    conn_ = common::pg::connect(config.conninfo);
  }
  return *conn_;
}

}  // namespace wsmtp::ctl
