// wsmtp: the SMTP listener. Reads the configuration, binds, and runs the event
// loops until SIGTERM/SIGINT (SIGHUP reloads). Everything protocol-related is in
// session*.cpp, everything network-related in loop.cpp and server.cpp.
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "db/message_store.h"
#include "server.h"

int main(int argc, char** argv) {
  using namespace wsmtp;
  const common::Daemon<listener::ListenerConfig> daemon{
      .name = "wsmtp",
      .description = "wsmtp: ESMTP listener that queues mail in PostgreSQL",
      .read_own = listener::read_listener_config,
      .reads_queue = false};
  using Config = common::DaemonConfig<listener::ListenerConfig>;
  return common::run_event_daemon(
      daemon, argc, argv,
      [](const Config& config) {
        log::info("configuration OK: listen {} hostname {}", config.own.listen.front().str(), config.own.hostname);
      },
      [](Config config, std::function<listener::ListenerConfig()> reload) {
        const auto& database = config.database;
        // One wake-up sender per shard for all its store connections: commits
        // are answered without waiting for the router's NOTIFY, which goes to
        // the message's shard, and bursts of them share one.
        std::vector<std::shared_ptr<common::pg::WakeupSender>> wakers;
        std::vector<std::shared_ptr<common::pg::ShardEpoch>> epochs;
        for (const auto& shard : database.shards) {
          wakers.push_back(std::make_shared<common::pg::WakeupSender>(shard.conninfo));
          epochs.push_back(std::make_shared<common::pg::ShardEpoch>());
        }
        listener::StoreMakers makers{
            .shard =
                [&database, wakers, epochs](std::size_t i, listener::StoreMakers::Lost lost) {
                  common::pg::ShardLost report;
                  if (lost)
                    report = [lost](const std::string& why, bool wrong) {
                      lost({.why = why, .wrong_database = wrong});
                    };
                  return common::pg::make_shard_store(database, database.shards.at(i), wakers.at(i), report,
                                                      epochs.at(i));
                },
            .directory = [&database,
                          waker = wakers.front()] { return common::pg::make_pg_store(database.conninfo, waker); },
            .check =
                [&database](std::size_t i) {
                  listener::ShardFault fault;
                  fault.why = common::pg::check_shard(database, database.shards.at(i), fault.wrong_database);
                  return fault;
                },
        };
        // SIGHUP reads the listener's section again; the database settings need a restart.
        listener::Server server(std::move(config.own), database, std::move(makers), std::move(reload));
        server.bind();
        server.run();
        return 0;
      });
}
