// wsmtp: the SMTP listener. Reads the configuration, binds, and runs the event
// loops until SIGTERM/SIGINT (SIGHUP reloads). Everything protocol-related is in
// session*.cpp, everything network-related in loop.cpp and server.cpp.
#include <csignal>
#include <exception>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "config.h"
#include "config/common_config.h"
#include "log.h"
#include "db/message_store.h"
#include "server.h"

int main(int argc, char** argv) {
  using namespace wsmtp;
  log::set_program("wsmtp");

  CLI::App app("wsmtp: ESMTP listener that queues mail in PostgreSQL", "wsmtp");
  common::CommonOptions options;
  common::add_common_options(app, options);
  bool check_config = false;
  app.add_flag("--check-config", check_config, "validate the configuration and exit");

  return common::run_main(app, argc, argv, [&]() -> int {
    auto file = common::load_config(options);
    auto database = common::read_database_config(file);
    auto config = listener::read_listener_config(file);
    if (check_config) {
      log::info("configuration OK: listen {} hostname {}", config.listen.front().str(), config.hostname);
      return 0;
    }
    // A client that resets the connection must not kill us with SIGPIPE; write
    // errors are reported by the socket calls instead. SIGHUP is handled by the
    // server's signal loop, but must not kill us before it is installed.
    std::signal(SIGPIPE, SIG_IGN);
    try {
      // SIGHUP reads the same file again; the database settings need a restart.
      auto reload = [&options] { return listener::read_listener_config(common::load_config(options)); };
      // One wake-up sender for all store connections: commits are answered
      // without waiting for the router's NOTIFY, and bursts of them share one.
      auto waker = std::make_shared<common::pg::WakeupSender>(database.conninfo);
      listener::Server server(
          std::move(config),
          [conninfo = database.conninfo, waker] { return common::pg::make_pg_store(conninfo, waker); }, reload);
      server.bind();
      server.run();
    } catch (const std::exception& e) {
      log::error("{}", e.what());
      return 1;
    }
    return 0;
  });
}
