// wreaper: housekeeping for the queue. Returns expired leases, holds crash loops,
// deletes aborted receipts and expired finished messages, every `interval`, on
// every queue shard: one thread and one connection per shard, so a shard that is
// down stops only its own passes.
#include <thread>
#include <vector>

#include "daemon.h"
#include "log.h"
#include "reap/reaper_config.h"
#include "shard_passes.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  bool once = false;
  const common::Daemon<common::reap::ReaperConfig> daemon{
      .name = "wreaper",
      .description = "wreaper: the WSMTP queue reaper",
      .read_own = common::reap::read_reaper_config,
      .add_flags = [&once](CLI::App& app) { app.add_flag("--once", once, "run one pass on every shard and exit"); }};
  using Config = common::DaemonConfig<common::reap::ReaperConfig>;
  return common::run_daemon(daemon, argc, argv, [&once](const Config& config, const std::atomic<bool>& stop) {
    if (once) {
      // Every shard is reaped even if one fails; the exit status says whether all were.
      int status = 0;
      for (const auto& pass : common::reap::reap_shards_once(config.database, config.own, config.queue))
        if (!pass.summary) status = 1;
      return std::optional<int>(status);
    }
    {
      std::vector<std::jthread> shards;
      for (const auto& shard : config.database.shards)
        shards.emplace_back([&config, &shard, &stop] {
          common::reap::reap_shard_until_stopped(config.database, shard, config.own, config.queue, stop);
        });
    }                             // joined once stop is set
    return std::optional<int>();  // stopped: the daemon's signal says whether to reload
  });
}
