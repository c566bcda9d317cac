// wdeliver: claims routed messages (state 3) with deliveries on the transports it
// serves, delivers them (Maildir, mbox, relay pools, LMTP), and finishes them (state 5) or returns
// them for a later retry (state 3).
#include <memory>

#include "config.h"
#include "daemon.h"
#include "deliver.h"
#include "identity.h"
#include "log.h"
#include "pg/directory_link.h"
#include "pg/waiter.h"
#include "pg/worker_pool.h"
#include "transport_registry.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  const common::Daemon<deliver::DeliverConfig> daemon{
      .name = "wdeliver",
      .description = "wdeliver: the WSMTP delivery agent (state 3 -> 5)",
      .read_own = deliver::read_deliver_config};
  using Config = common::DaemonConfig<deliver::DeliverConfig>;
  return common::run_daemon(daemon, argc, argv, [](const Config& config, const std::atomic<bool>& stop) {
    const auto& deliver_config = config.own;
    const std::string host = common::host_name();
    log::info("wdeliver supervisor starting on {} for transports {}", host, fmt::join(deliver_config.transports, ","));
    common::pg::run_worker_pool(
        {.program = "wdeliver",
         .channel = common::pg::kDeliverChannel,
         .batch_size = deliver_config.batch_size,
         .scaling = deliver_config.scaling,
         // The keeper renews the leases of the batch in hand from a thread of
         // its own, while the worker shows progress within its own timeouts.
         .stall_limit = deliver::longest_quiet_step(deliver_config),
         .backlog =
             [&](pqxx::transaction_base& tx) { return common::pg::delivery_backlog(tx, deliver_config.transports); }},
        config.database, config.queue, stop,
        [&](const std::string& owner, common::pg::LeaseKeeper& keeper,
            const common::ShardConfig& shard) -> common::pg::WorkerStep {
          // Shared only because std::function must be copyable: the step is its one owner.
          auto deliverer = std::make_shared<deliver::Deliverer>(
              deliver_config, config.queue, owner, keeper,
              deliver::standard_transports(deliver_config, host, [&keeper] { keeper.progress(); }),
              common::pg::DirectoryLink(config.database, shard));
          return [deliverer](pqxx::connection& conn) { return deliverer->run_batch(conn); };
        });
    return std::optional<int>();  // stopped: the daemon's signal says whether to reload
  });
}
