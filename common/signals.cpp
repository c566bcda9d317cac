#include "signals.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "config/config_file.h"
#include "log.h"

namespace wsmtp::common {
namespace {
// The process-global state a signal handler forces on us.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free, "signal handler needs a lock-free flag");
extern "C" void on_stop_signal(int) { g_stop.store(true); }
extern "C" void on_reload_signal(int) {
  g_reload.store(true);
  g_stop.store(true);
}
}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_reload_signal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return g_stop;
}

bool handle_reload(char** argv, const std::function<void()>& validate) {
  if (!g_reload.exchange(false)) return false;
  try {
    validate();
  } catch (const ConfigError& e) {
    log::error("reload refused, keeping the running configuration: {}", e.what());
    g_stop = false;
    return true;
  }
  log::info("configuration valid; restarting with it");
  // The signal mask and handlers are reset by exec; our descriptors are CLOEXEC
  // (libpq, libevent) or closed with the loop that owned them.
  ::execv("/proc/self/exe", argv);
  log::error("re-exec failed ({}); keeping the running configuration", std::strerror(errno));
  g_stop = false;
  return true;
}

}  // namespace wsmtp::common
