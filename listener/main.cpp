// wsmtp: the SMTP listener. Reads the configuration, binds, and runs the event
// loops until SIGTERM/SIGINT (SIGHUP reloads). Everything protocol-related is in
// session*.cpp, everything network-related in loop.cpp and server.cpp.
#include <memory>

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
        // One wake-up sender for all store connections: commits are answered
        // without waiting for the router's NOTIFY, and bursts of them share one.
        auto waker = std::make_shared<common::pg::WakeupSender>(config.database.conninfo);
        // SIGHUP reads the listener's section again; the database settings need a restart.
        listener::Server server(
            std::move(config.own),
            [conninfo = config.database.conninfo, waker] { return common::pg::make_pg_store(conninfo, waker); },
            std::move(reload));
        server.bind();
        server.run();
        return 0;
      });
}
