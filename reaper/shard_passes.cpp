#include "shard_passes.h"

#include <chrono>
#include <thread>

#include "log.h"
#include "pg/connection.h"
#include "pg/migrate.h"
#include "pg/shards.h"

namespace wsmtp::common::reap {
namespace {

void check_shard(pqxx::connection& conn, const DatabaseConfig& database, const ShardConfig& shard) {
  pg::require_current_schema(conn);
  pg::require_shard_identity(conn, database, shard);
}

// Sleeps up to `interval`, waking early for stop.
void wait_for(std::chrono::milliseconds interval, const std::atomic<bool>& stop) {
  constexpr auto kTick = std::chrono::milliseconds(200);
  for (auto waited = std::chrono::milliseconds(0); waited < interval && !stop; waited += kTick)
    std::this_thread::sleep_for(kTick);
}

}  // namespace

std::unique_ptr<pqxx::connection> connect_shard(const DatabaseConfig& database, const ShardConfig& shard) {
  auto conn = pg::connect(shard.conninfo);
  check_shard(*conn, database, shard);
  return conn;
}

std::vector<ShardPass> reap_shards_once(const DatabaseConfig& database, const ReaperConfig& config,
                                        const QueueConfig& queue) {
  std::vector<ShardPass> passes(database.shards.size());
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < database.shards.size(); ++i) {
      threads.emplace_back([&, i] {
        const auto& shard = database.shards[i];
        auto& pass = passes[i];
        pass.shard = shard.name;
        try {
          auto conn = connect_shard(database, shard);
          pass.summary = reap_once(*conn, config, queue, shard.name);
        } catch (const std::exception& e) {
          pass.error = e.what();
          log::error("reaper pass on shard {} failed: {}", shard.name, e.what());
        }
      });
    }
  }  // joined: every pass has ended
  return passes;
}

void reap_shard_until_stopped(const DatabaseConfig& database, const ShardConfig& shard, const ReaperConfig& config,
                              const QueueConfig& queue, const std::atomic<bool>& stop) {
  std::unique_ptr<pqxx::connection> conn;
  while (!stop) {
    try {
      if (!conn || !conn->is_open()) {
        conn = pg::connect_with_backoff(shard.conninfo, stop);
        if (!conn) return;
        check_shard(*conn, database, shard);
      }
      reap_once(*conn, config, queue, shard.name);
    } catch (const pg::SchemaTooNew& e) {
      log::fatal("shard {}: {}", shard.name, e.what());
    } catch (const std::exception& e) {
      log::warn("reaper pass on shard {} failed: {}", shard.name, e.what());
      conn.reset();
    }
    wait_for(config.interval, stop);
  }
}

}  // namespace wsmtp::common::reap
