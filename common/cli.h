// Flags and start-up shared by every program: --config, --log-level, and turning a
// ConfigError into a message and exit status 2.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "config/config_file.h"

namespace wsmtp::common {

inline constexpr int kExitConfig = 2;

struct CommonOptions {
  std::string config_path;
  std::string log_level = "info";
};

void add_common_options(CLI::App& app, CommonOptions& options);

// Applies --log-level and loads --config (an empty configuration when none is
// given). Throws ConfigError with a precise message.
ConfigFile load_config(const CommonOptions& options);

// Parses argv, then runs body. Maps CLI errors to CLI11's exit codes and
// ConfigError to kExitConfig with the message on stderr.
int run_main(CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace wsmtp::common
