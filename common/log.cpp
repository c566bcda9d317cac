// Formats and writes log lines. One write(2) per line so lines from several
// threads or processes sharing stderr never interleave mid-line.
#include "log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>

#include <fmt/chrono.h>

namespace wsmtp::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::info)};
// Written once in main() before threads start; read-only afterwards.
char g_program[32] = "wsmtp";

const char* level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::fatal:
      return "fatal";
  }
  return "?";
}

}  // namespace

void set_program(std::string_view name) {
  auto n = std::min(name.size(), sizeof(g_program) - 1);
  name.copy(g_program, n);
  g_program[n] = '\0';
}

void set_level(Level level) { g_level = static_cast<int>(level); }

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

Level parse_level(std::string_view text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warn") return Level::warn;
  if (text == "error") return Level::error;
  throw std::invalid_argument("expected one of debug, info, warn, error");
}

void write(Level level, std::string_view line) noexcept {
  try {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::string out = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z {}[{}] {}: {}\n",
                                  fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms, g_program, ::getpid(),
                                  level_name(level), line);
    ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
    (void)ignored;
  } catch (...) {
    // Logging must never take a daemon down; a line lost to ENOMEM is acceptable.
  }
}

}  // namespace wsmtp::log
