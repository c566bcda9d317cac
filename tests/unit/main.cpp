// Catch2 main for every test executable. Daemon code logs at info; tests show
// warnings and up unless WSMTP_TEST_LOG=debug|info asks for more.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include "log.h"

int main(int argc, char** argv) {
  const char* level = std::getenv("WSMTP_TEST_LOG");
  wsmtp::log::set_level(wsmtp::log::parse_level(level && *level ? level : "warn"));
  return Catch::Session().run(argc, argv);
}
