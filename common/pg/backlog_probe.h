// The supervisor's measure of waiting work (common/supervisor.h), asked every
// check interval: its own connection, reopened after a failure, and "unknown"
// (nullopt) while the database is unreachable so the worker count stays put.
// One supervisor asks every shard's probe in turn, so a dead shard must not
// stall the others': connecting gives up after 3 s, and after a failure the
// probe answers "unknown" at once for kRetryAfter before it tries again.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

class BacklogProbe {
 public:
  using Query = std::function<std::int64_t(pqxx::transaction_base&)>;
  BacklogProbe(std::string conninfo, Query query);
  std::optional<std::int64_t> operator()();

 private:
  static constexpr std::chrono::seconds kRetryAfter{5};
  std::string conninfo_;
  Query query_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point retry_at_{};
};

// Messages waiting for delivery (state 3, due, not held) with a due delivery on
// one of `transports`, counted up to cap.
std::int64_t delivery_backlog(pqxx::transaction_base& tx, const std::vector<std::string>& transports,
                              std::int64_t cap = 100000);

}  // namespace wsmtp::common::pg
