#include "daemon.h"

#include <csignal>
#include <exception>

#include "log.h"
#include "signals.h"

namespace wsmtp::common::daemon_detail {

int start(const std::string& name, const std::string& description, int argc, char** argv,
          const std::function<void(CLI::App&)>& add_flags,
          const std::function<int(const CommonOptions&, bool check_only)>& start) {
  log::set_program(name);
  CLI::App app{description, name};
  CommonOptions options;
  bool check_only = false;
  add_common_options(app, options);
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  if (add_flags) add_flags(app);
  return run_main(app, argc, argv, [&] { return start(options, check_only); });
}

int serve_until_stopped(const std::string& name, char** argv,
                        const std::function<std::optional<int>(const std::atomic<bool>& stop)>& serve,
                        const std::function<void()>& validate) {
  const auto& stop = install_stop_signals();
  do {
    if (auto status = serve(stop)) return *status;
  } while (handle_reload(argv, validate));
  log::info("{} stopped", name);
  return 0;
}

int serve_events(const std::function<int()>& serve) {
  // A client that resets the connection must not kill us with SIGPIPE; write
  // errors are reported by the socket calls instead.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return serve();
  } catch (const std::exception& e) {
    log::error("{}", e.what());
    return 1;
  }
}

}  // namespace wsmtp::common::daemon_detail
