#include "reap/reap_pass.h"

#include "log.h"
#include "pg/cleanup.h"
#include "pg/operator_actions.h"
#include "pg/transitions.h"

namespace wsmtp::common::reap {

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

PassSummary reap_once(pqxx::connection& conn, const ReaperConfig& config, const QueueConfig& queue,
                      const std::string& shard) {
  PassSummary s;
  const int n = config.batch_size;
  for (auto [state, reset] :
       {std::pair{MsgState::routing, &s.routing_reset}, std::pair{MsgState::delivering, &s.delivering_reset}}) {
    drain(
        [&, state = state, reset = reset] {
          auto c = pg::reset_expired_leases(conn, state, queue.max_expired_claims, n);
          *reset += c.reset;
          s.held += c.held;
          return c.reset + c.held;
        },
        n);
  }
  s.expired_bounced = drain([&] { return pg::expire_queue_lifetime(conn, queue.queue_lifetime, n); }, n);
  s.aborted_deleted = drain([&] { return pg::delete_aborted(conn, config.receive_timeout, n); }, n);
  s.done_deleted = drain([&] { return pg::delete_done(conn, config.retention, n); }, n);
  // Last: the deletions above may have brought keys to zero.
  s.backlog_folded = drain([&] { return pg::fold_backlog_counts(conn, n); }, n);
  log::info(
      "reaper pass{}{}: leases returned routing={} delivering={} held={} expired bounced={} aborted deleted={} "
      "done deleted={} backlog rows folded={}",
      shard.empty() ? "" : " on shard ", shard, s.routing_reset, s.delivering_reset, s.held, s.expired_bounced,
      s.aborted_deleted, s.done_deleted, s.backlog_folded);
  return s;
}

}  // namespace wsmtp::common::reap
