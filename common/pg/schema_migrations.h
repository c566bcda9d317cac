// The migrations compiled into the binary from schema/*.sql (see
// cmake/embed_schema.cmake), in version order.
#pragma once

#include <vector>

namespace wsmtp::common::pg {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<Migration>& embedded_migrations();

}  // namespace wsmtp::common::pg
