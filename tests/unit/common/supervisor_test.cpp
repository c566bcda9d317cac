#include "supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

using wsmtp::common::desired_workers;
using wsmtp::common::SupervisorOptions;

TEST_CASE("the supervisor sizes the pool by the backlog within its bounds") {
  SupervisorOptions o;
  o.min_workers = 2;
  o.max_workers = 5;
  o.backlog_per_worker = 100;
  CHECK(desired_workers(o, 0) == 2);
  CHECK(desired_workers(o, -3) == 2);
  CHECK(desired_workers(o, 201) == 3);
  CHECK(desired_workers(o, 400) == 4);
  CHECK(desired_workers(o, 1000000) == 5);
}

namespace {

// Reads what the workers wrote to the pipe until every writer is gone.
std::string drain(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("each group of workers is sized by its own backlog") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  SupervisorOptions o;
  o.min_workers = 1;
  o.max_workers = 4;
  o.backlog_per_worker = 100;
  o.check_interval = std::chrono::milliseconds(20);
  o.stop_grace = std::chrono::milliseconds(5000);
  std::atomic<bool> stop{false};
  // A worker writes its group's letter, then waits for the supervisor's
  // SIGTERM (the default action: not the test framework's handler).
  auto worker = [&](char letter) {
    return [&, letter] {
      ::signal(SIGTERM, SIG_DFL);
      ::close(fds[0]);
      (void)!::write(fds[1], &letter, 1);
      for (;;) ::pause();
      return 0;
    };
  };
  std::vector<wsmtp::common::WorkerGroup> groups{
      {"busy", worker('a'), [] { return std::optional<std::int64_t>(250); }},
      {"idle", worker('b'), [] { return std::optional<std::int64_t>(0); }},
      {"unreachable", worker('c'), [] { return std::optional<std::int64_t>(); }}};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    stop = true;
  });
  wsmtp::common::run_supervisor(o, stop, groups);
  stopper.join();
  ::close(fds[1]);
  auto started = drain(fds[0]);
  ::close(fds[0]);
  CHECK(std::count(started.begin(), started.end(), 'a') == 3);
  CHECK(std::count(started.begin(), started.end(), 'b') == 1);
  CHECK(std::count(started.begin(), started.end(), 'c') == 1);  // unknown: the minimum
}
