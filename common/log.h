// The logging facade: one line per event on stderr (journald collects it), with a
// timestamp, the program name and pid, and the level. Lines about a message start
// with "msg=<id>" so one grep follows it through every program and host.
// Never pass message bodies, AUTH arguments or passwords to these functions.
#pragma once

#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace wsmtp::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, fatal = 4 };

// Set once at startup, before any thread is started.
void set_program(std::string_view name);
void set_level(Level level);
bool enabled(Level level);
// Parses "debug", "info", "warn", "error"; throws std::invalid_argument otherwise.
Level parse_level(std::string_view text);

void write(Level level, std::string_view line) noexcept;

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
// Logs and aborts: for our own bugs and broken installs only (STYLE §4).
template <typename... Args>
[[noreturn]] void fatal(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::fatal, fmt::format(f, std::forward<Args>(args)...));
  std::abort();
}

}  // namespace wsmtp::log
