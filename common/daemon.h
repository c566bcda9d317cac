// The start-up and main loop every daemon shares: the program name in the log,
// --config, --log-level and --check-config, reading and checking every section
// before anything is opened (exit 2 naming the key), and the stop/reload
// signals. A daemon's main.cpp only names its own section reader and says what
// it serves; this file knows nothing about messages, SQL or sockets.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "config/common_config.h"
#include "config/config_file.h"

namespace wsmtp::common {

// The sections a daemon runs with: the shared ones and its own.
template <class Config>
struct DaemonConfig {
  DatabaseConfig database;
  QueueConfig queue;  // the defaults for a daemon that does not read [queue]
  Config own;
};

template <class Config>
struct Daemon {
  std::string name;         // "wroute": the log's program name, --help's and the "wroute stopped" line's
  std::string description;  // --help's first line
  // Reads and checks the program's own section; throws ConfigError naming the key.
  Config (*read_own)(const ConfigFile&) = nullptr;
  // The listener claims no queued work, so [queue] is not its business.
  bool reads_queue = true;
  std::function<void(CLI::App&)> add_flags = {};  // the program's own flags, if any
};

// Every section d uses, read from file. Throws ConfigError naming the key.
template <class Config>
DaemonConfig<Config> read_daemon_config(const Daemon<Config>& d, const ConfigFile& file) {
  DaemonConfig<Config> config;
  config.database = read_database_config(file);
  if (d.reads_queue) config.queue = read_queue_config(file);
  config.own = d.read_own(file);
  return config;
}

// The program-independent halves of run_daemon and run_event_daemon (daemon.cpp).
namespace daemon_detail {
// Sets the log's program name, parses the common flags, --check-config and
// add_flags, then runs start(options, check_only) inside run_main (exit codes:
// 0 for --help, 2 for a bad flag or a ConfigError).
int start(const std::string& name, const std::string& description, int argc, char** argv,
          const std::function<void(CLI::App&)>& add_flags,
          const std::function<int(const CommonOptions&, bool check_only)>& start);
// Installs the stop signals and runs serve until it returns an exit status or
// the stop flag ends it; on SIGHUP, validate() and re-execute (handle_reload).
int serve_until_stopped(const std::string& name, char** argv,
                        const std::function<std::optional<int>(const std::atomic<bool>& stop)>& serve,
                        const std::function<void()>& validate);
// Runs serve with SIGPIPE ignored; an exception from it is logged and exits 1.
int serve_events(const std::function<int()>& serve);
}  // namespace daemon_detail

// A daemon that stops on SIGTERM/SIGINT and re-executes itself on SIGHUP (the
// router, the deliverer, the reaper). Reads and checks every section, exits 0
// after that for --check-config, else calls serve(config, stop) until stop is
// set; then a SIGHUP with a good file re-executes the program in place, a bad
// one is logged and serve runs again with the old configuration, and a real stop
// logs "<name> stopped" and exits 0. serve may instead return an exit status
// (wreaper --once), which ends the process at once.
template <class Config>
int run_daemon(
    const Daemon<Config>& d, int argc, char** argv,
    const std::type_identity_t<
        std::function<std::optional<int>(const DaemonConfig<Config>&, const std::atomic<bool>& stop)>>& serve) {
  return daemon_detail::start(d.name, d.description, argc, argv, d.add_flags,
                              [&](const CommonOptions& options, bool check_only) {
                                const auto config = read_daemon_config(d, load_config(options));
                                if (check_only) return 0;
                                return daemon_detail::serve_until_stopped(
                                    d.name, argv, [&](const std::atomic<bool>& stop) { return serve(config, stop); },
                                    [&] { read_daemon_config(d, load_config(options)); });
                              });
}

// A daemon whose event loops handle the signals themselves and reload in
// process (the listener). Reads and checks every section; for --check-config
// calls checked(config) and exits 0. Otherwise serve(config, reload) runs with
// SIGPIPE ignored; reload() reads the program's own section from the file
// again (throws ConfigError; the others need a restart). An exception from
// serve is logged and exits 1.
template <class Config>
int run_event_daemon(
    const Daemon<Config>& d, int argc, char** argv,
    const std::type_identity_t<std::function<void(const DaemonConfig<Config>&)>>& checked,
    const std::type_identity_t<std::function<int(DaemonConfig<Config>, std::function<Config()> reload)>>& serve) {
  return daemon_detail::start(
      d.name, d.description, argc, argv, d.add_flags, [&](const CommonOptions& options, bool check_only) {
        auto config = read_daemon_config(d, load_config(options));
        if (check_only) {
          checked(config);
          return 0;
        }
        return daemon_detail::serve_events(
            [&] { return serve(std::move(config), [&d, &options] { return d.read_own(load_config(options)); }); });
      });
}

}  // namespace wsmtp::common
