#include "cli.h"

#include <iostream>

#include "log.h"

namespace wsmtp::common {

void add_common_options(CLI::App& app, CommonOptions& options) {
  app.add_option("-c,--config", options.config_path, "configuration file (one for the whole installation)");
  app.add_option("--log-level", options.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
}

ConfigFile load_config(const CommonOptions& options) {
  log::set_level(log::parse_level(options.log_level));
  return options.config_path.empty() ? ConfigFile::empty() : ConfigFile::load(options.config_path);
}

int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or the help) and has codes of its own (105 for
    // a failed check); ours are 0 for --help and 2 for any bad argument.
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitConfig;
  }
  try {
    return body();
  } catch (const ConfigError& e) {
    std::cerr << app.get_name() << ": " << e.what() << "\n";
    return kExitConfig;
  }
}

}  // namespace wsmtp::common
