#include "db_health.h"

#include <fmt/format.h>

namespace wsmtp::ctl {

std::string database_role(const DatabaseHealth& h) {
  if (!h.is_directory) return "shard";
  return h.is_shard ? "directory+shard" : "directory";
}

std::vector<std::string> health_problems(const DatabaseHealth& h, bool single) {
  std::vector<std::string> out;
  if (!h.reachable) {
    out.push_back(fmt::format("unreachable: {}", h.error));
    return out;
  }
  if (h.database_version > h.binary_version)
    out.push_back(fmt::format("the database is newer than this binary (schema {}, binary {})", h.database_version,
                              h.binary_version));
  else if (!h.pending.empty())
    out.push_back(fmt::format("schema {} is behind this binary's {}: {} pending migration(s); run wsmtpctl db migrate",
                              h.database_version, h.binary_version, h.pending.size()));
  if (!h.is_shard) return out;
  if (!h.claimed) {
    // Before migration 023 there is nothing to claim with; the pending
    // migrations above already say what to do.
    if (!single && h.pending.empty()) out.push_back("no shard identity: run wsmtpctl db migrate to claim it");
    return out;
  }
  if (h.claimed->id != h.configured_id)
    out.push_back(fmt::format("its database is shard \"{}\" (id {}), not id {}: check [shard {}] conninfo",
                              h.claimed->name, h.claimed->id, h.configured_id, h.configured_name));
  else if (h.claimed->name != h.configured_name)
    out.push_back(
        fmt::format("its database was claimed as \"{}\": wsmtpctl db migrate records the new name", h.claimed->name));
  return out;
}

}  // namespace wsmtp::ctl
