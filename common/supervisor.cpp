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
  std::size_t group = 0;
  Clock::time_point started;
  bool retiring = false;
};

// What the supervisor keeps per group: its restart backoff and how long it has
// had more workers than its backlog asks for.
struct GroupState {
  std::chrono::milliseconds backoff;
  Clock::time_point next_spawn{};
  std::optional<Clock::time_point> surplus_since;
};

class Supervisor {
 public:
  Supervisor(const SupervisorOptions& o, const std::atomic<bool>& stop, const std::vector<WorkerGroup>& groups)
      : o_(o), stop_(stop), groups_(groups), state_(groups.size(), GroupState{o.restart_backoff_min, {}, {}}) {}

  void tick() {
    reap();
    for (std::size_t g = 0; g < groups_.size(); ++g) tick_group(g, groups_[g].backlog());
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
  void tick_group(std::size_t g, std::optional<std::int64_t> backlog) {
    auto& st = state_[g];
    const int active = active_count(g);
    const int want = backlog ? desired_workers(o_, *backlog) : std::clamp(active, o_.min_workers, o_.max_workers);
    const auto now = Clock::now();
    if (active < want) {
      st.surplus_since.reset();
      // After a crash, one new worker per backoff period; otherwise all at
      // once.
      for (int i = active; i < want && now >= st.next_spawn; ++i) spawn(g);
    } else if (active > want) {
      if (!st.surplus_since) st.surplus_since = now;
      if (now - *st.surplus_since >= o_.idle_time) {
        retire_one(g);
        st.surplus_since = now;  // the next one must be unneeded for a whole idle_time again
      }
    } else {
      st.surplus_since.reset();
    }
  }

  int active_count(std::size_t g) const {
    return static_cast<int>(std::count_if(workers_.begin(), workers_.end(),
                                          [g](auto& w) { return w.second.group == g && !w.second.retiring; }));
  }

  // " for shard q1" in the log lines of a named group.
  std::string of(std::size_t g) const { return groups_[g].name.empty() ? "" : " for " + groups_[g].name; }

  void spawn(std::size_t g) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      log::error("fork failed: {}; retrying later", std::strerror(errno));
      state_[g].next_spawn = Clock::now() + state_[g].backoff;
      return;
    }
    if (pid == 0) run_child(parent, g);
    workers_[pid] = {g, Clock::now(), false};
    log::info("worker {} started{} ({} running)", pid, of(g), active_count(g));
  }

  [[noreturn]] void run_child(pid_t parent, std::size_t g) {
    // The worker must not outlive the supervisor (kill -9 of the supervisor).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(0);
    int rc = 1;
    try {
      rc = groups_[g].worker();
    } catch (const std::exception& e) {
      log::error("worker failed: {}", e.what());
    }
    // _exit: never run the parent's destructors (its database connection) here.
    ::_exit(rc);
  }

  void retire_one(std::size_t g) {
    // The newest worker retires: the oldest have proven stable.
    auto newest = workers_.end();
    for (auto it = workers_.begin(); it != workers_.end(); ++it)
      if (it->second.group == g && !it->second.retiring &&
          (newest == workers_.end() || it->second.started > newest->second.started))
        newest = it;
    if (newest == workers_.end()) return;
    newest->second.retiring = true;
    ::kill(newest->first, SIGTERM);
    log::info("worker {}{} retiring (backlog low)", newest->first, of(g));
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
      on_crash(pid, w.group, status, Clock::now() - w.started);
    }
  }

  void on_crash(pid_t pid, std::size_t g, int status, Clock::duration lived) {
    auto& st = state_[g];
    if (lived >= o_.stable_after) st.backoff = o_.restart_backoff_min;
    st.next_spawn = Clock::now() + st.backoff;
    if (WIFSIGNALED(status))
      log::error("worker {}{} killed by signal {}; restarting in {} ms", pid, of(g), WTERMSIG(status),
                 st.backoff.count());
    else
      log::error("worker {}{} exited with status {}; restarting in {} ms", pid, of(g), WEXITSTATUS(status),
                 st.backoff.count());
    st.backoff = std::min(st.backoff * 2, o_.restart_backoff_max);
  }

  const SupervisorOptions& o_;
  const std::atomic<bool>& stop_;
  const std::vector<WorkerGroup>& groups_;
  std::vector<GroupState> state_;
  std::map<pid_t, Worker> workers_;
};

}  // namespace

int desired_workers(const SupervisorOptions& o, std::int64_t backlog) {
  const std::int64_t per = std::max(1, o.backlog_per_worker);
  const std::int64_t want = (std::max<std::int64_t>(backlog, 0) + per - 1) / per;
  return static_cast<int>(std::clamp<std::int64_t>(want, o.min_workers, o.max_workers));
}

int run_supervisor(const SupervisorOptions& options, const std::atomic<bool>& stop, const std::function<int()>& worker,
                   const std::function<std::optional<std::int64_t>()>& backlog) {
  return run_supervisor(options, stop, std::vector<WorkerGroup>{{"", worker, backlog}});
}

int run_supervisor(const SupervisorOptions& options, const std::atomic<bool>& stop,
                   const std::vector<WorkerGroup>& groups) {
  Supervisor s(options, stop, groups);
  log::info("supervisor running: workers {}..{}{}, one per {} waiting", options.min_workers, options.max_workers,
            groups.size() > 1 ? fmt::format(" in each of {} groups", groups.size()) : "", options.backlog_per_worker);
  while (!stop) {
    s.tick();
    const auto until = Clock::now() + options.check_interval;
    while (!stop && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.shutdown();
  return 0;
}

void supervise(const WorkerScaling& scaling, std::chrono::seconds lease_time, const std::atomic<bool>& stop,
               const std::vector<WorkerGroup>& groups) {
  SupervisorOptions options;
  options.min_workers = scaling.min_workers;
  options.max_workers = scaling.max_workers;
  options.backlog_per_worker = scaling.backlog_per_worker;
  options.idle_time = scaling.idle_time;
  options.stop_grace = lease_time;
  run_supervisor(options, stop, groups);
}

}  // namespace wsmtp::common
