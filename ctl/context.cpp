#include "context.h"

#include <fmt/format.h>

#include "config/common_config.h"
#include "pg/connection.h"
#include "pg/directory.h"

namespace wsmtp::ctl {

const common::DatabaseConfig& Context::database() {
  if (!database_) database_ = common::read_database_config(common::load_config(options));
  return *database_;
}

pqxx::connection& Context::db() {
  if (!conn_) conn_ = common::pg::connect(database().conninfo);
  return *conn_;
}

pqxx::connection& Context::shard(const common::ShardConfig& shard) {
  if (database().is_directory(shard)) return db();
  auto& conn = shard_conns_[shard.id];
  if (!conn) conn = common::pg::connect(shard.conninfo);
  return *conn;
}

common::Address require_address(const std::string& text) {
  auto a = common::parse_mailbox(text, true);
  if (!a || a->is_address_literal())
    throw CommandError(fmt::format("'{}' is not a valid address (local@domain)", text));
  return *a;
}

void require_local_domain(pqxx::transaction_base& tx, const std::string& domain) {
  if (!common::pg::is_local_domain(tx, domain))
    throw CommandError(
        fmt::format("domain '{}' is not a local domain; add it with 'wsmtpctl domain add {}'", domain, domain));
}

}  // namespace wsmtp::ctl
