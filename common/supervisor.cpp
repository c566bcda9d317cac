#include "supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <thread>

#include "log.h"

namespace wsmtp::common {
namespace {

using Clock = std::chrono::steady_clock;

struct Worker {
  Clock::time_point started;
  bool retiring = false;
};

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& o, const std::atomic<bool>& stop, const std::function<int()>& worker)
      : o_(o), stop_(stop), worker_(worker), backoff_(o.restart_backoff_min) {}

  void tick(std::optional<std::int64_t> backlog) {
    reap();
    const int active = active_count();
    const int want = backlog ? desired_workers(o_, *backlog) : std::clamp(active, o_.min_workers, o_.max_workers);
    const auto now = Clock::now();
    if (active < want) {
      surplus_since_.reset();
      // After a crash, one new worker per backoff period; otherwise all at
      // once.
      for (int i = active; i < want && now >= next_spawn_; ++i) spawn();
    } else if (active > want) {
      if (!surplus_since_) surplus_since_ = now;
      if (now - *surplus_since_ >= o_.idle_time) {
        retire_one();
        surplus_since_ = now;  // the next one must be unneeded for a whole idle_time again
      }
    } else {
      surplus_since_.reset();
    }
  }

  void shutdown() {
    for (auto& [pid, w] : workers_) ::kill(pid, SIGTERM);
    log::info("supervisor stopping {} workers", workers_.size());
    const auto deadline = Clock::now() + o_.stop_grace;
    while (!workers_.empty() && Clock::now() < deadline) {
      reap();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (auto& [pid, w] : workers_) {
      log::warn("worker {} did not stop within the grace time; killing it", pid);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    workers_.clear();
  }

 private:
  int active_count() const {
    return static_cast<int>(
        std::count_if(workers_.begin(), workers_.end(), [](auto& w) { return !w.second.retiring; }));
  }

  void spawn() {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      log::error("fork failed: {}; retrying later", std::strerror(errno));
      next_spawn_ = Clock::now() + backoff_;
      return;
    }
    if (pid == 0) run_child(parent);
    workers_[pid] = {Clock::now(), false};
    log::info("worker {} started ({} running)", pid, workers_.size());
  }

  [[noreturn]] void run_child(pid_t parent) {
    // The worker must not outlive the supervisor (kill -9 of the supervisor).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
    int rc = 1;
    try {
      rc = worker_();
    } catch (const std::exception& e) {
      log::error("worker failed: {}", e.what());
    }
    // _exit: never run the parent's destructors (its database connection) here.
    ::_exit(rc);
  }

  void retire_one() {
    // The newest worker retires: the oldest have proven stable.
    auto newest = workers_.end();
    for (auto it = workers_.begin(); it != workers_.end(); ++it)
      if (!it->second.retiring && (newest == workers_.end() || it->second.started > newest->second.started))
        newest = it;
    if (newest == workers_.end()) return;
    newest->second.retiring = true;
    ::kill(newest->first, SIGTERM);
    log::info("worker {} retiring (backlog low)", newest->first);
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = workers_.find(pid);
      if (it == workers_.end()) continue;
      const Worker w = it->second;
      workers_.erase(it);
      if (w.retiring || stop_) {
        log::info("worker {} stopped", pid);
        continue;
      }
      on_crash(pid, status, Clock::now() - w.started);
    }
  }

  void on_crash(pid_t pid, int status, Clock::duration lived) {
    if (lived >= o_.stable_after) backoff_ = o_.restart_backoff_min;
    next_spawn_ = Clock::now() + backoff_;
    if (WIFSIGNALED(status))
      log::error("worker {} killed by signal {}; restarting in {} ms", pid, WTERMSIG(status), backoff_.count());
    else
      log::error("worker {} exited with status {}; restarting in {} ms", pid, WEXITSTATUS(status), backoff_.count());
    backoff_ = std::min(backoff_ * 2, o_.restart_backoff_max);
  }

  const SupervisorOptions& o_;
  const std::atomic<bool>& stop_;
  const std::function<int()>& worker_;
  std::map<pid_t, Worker> workers_;
  std::chrono::milliseconds backoff_;
  Clock::time_point next_spawn_{};
  std::optional<Clock::time_point> surplus_since_;
};

}  // namespace

int desired_workers(const SupervisorOptions& o, std::int64_t backlog) {
  const std::int64_t per = std::max(1, o.backlog_per_worker);
  const std::int64_t want = (std::max<std::int64_t>(backlog, 0) + per - 1) / per;
  return static_cast<int>(std::clamp<std::int64_t>(want, o.min_workers, o.max_workers));
}

int run_supervisor(const SupervisorOptions& options, const std::atomic<bool>& stop, const std::function<int()>& worker,
                   const std::function<std::optional<std::int64_t>()>& backlog) {
  Supervisor s(options, stop, worker);
  log::info("supervisor running: workers {}..{}, one per {} waiting", options.min_workers, options.max_workers,
            options.backlog_per_worker);
  while (!stop) {
    s.tick(backlog());
    const auto until = Clock::now() + options.check_interval;
    while (!stop && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.shutdown();
  return 0;
}

void supervise(const WorkerScaling& scaling, std::chrono::seconds lease_time, const std::atomic<bool>& stop,
               const std::function<int()>& worker, const std::function<std::optional<std::int64_t>()>& backlog) {
  SupervisorOptions options;
  options.min_workers = scaling.min_workers;
  options.max_workers = scaling.max_workers;
  options.backlog_per_worker = scaling.backlog_per_worker;
  options.idle_time = scaling.idle_time;
  options.stop_grace = lease_time;
  run_supervisor(options, stop, worker, backlog);
}

}  // namespace wsmtp::common
