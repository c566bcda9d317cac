#include "reap.h"

#include "log.h"
#include "pg/cleanup.h"
#include "pg/transitions.h"

namespace wsmtp::reaper {

namespace {
// Repeats a batched step until a batch comes back short; bounded so one pass
// cannot run forever against a queue that refills as fast as we empty it.
template <class Step>
int drain(Step step, int batch_size) {
  constexpr int kMaxBatchesPerPass = 100;
  int total = 0;
  for (int i = 0; i < kMaxBatchesPerPass; ++i) {
    int n = step();
    total += n;
    if (n < batch_size) break;
  }
  return total;
}
}  // namespace

PassSummary reap_once(pqxx::connection& conn, const ReaperConfig& config, const common::QueueConfig& queue) {
  using common::MsgState;
  PassSummary s;
  int n = config.batch_size;
  s.routing_reset = drain(
      [&] {
        auto c = common::pg::reset_expired_leases(conn, MsgState::routing, queue.max_expired_claims, n);
        s.held += c.held;
        return c.reset + c.held;
      },
      n);
  s.delivering_reset = drain(
      [&] {
        auto c = common::pg::reset_expired_leases(conn, MsgState::delivering, queue.max_expired_claims, n);
        s.held += c.held;
        return c.reset + c.held;
      },
      n);
  s.aborted_deleted = drain([&] { return common::pg::delete_aborted(conn, config.receive_timeout, n); }, n);
  s.done_deleted = drain([&] { return common::pg::delete_done(conn, config.retention, n); }, n);
  log::info("reaper pass: leases returned routing={} delivering={} held={} aborted deleted={} done deleted={}",
            s.routing_reset, s.delivering_reset, s.held, s.aborted_deleted, s.done_deleted);
  return s;
}

}  // namespace wsmtp::reaper
