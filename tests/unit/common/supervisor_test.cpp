#include "supervisor.h"

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
