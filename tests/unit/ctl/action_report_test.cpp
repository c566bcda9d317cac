// What wsmtpctl says about messages an action did or did not change, and the
// exit status that follows.
#include <catch2/catch.hpp>

#include "ctl/action_report.h"
#include "ctl/context.h"

using namespace wsmtp;
using namespace wsmtp::ctl;
using common::MsgState;
using common::pg::BounceResult;
using common::pg::BounceVerdict;
using common::pg::MessageSnapshot;

namespace {

MessageSnapshot snap(int state, bool held = false, int pending = 0, std::string owner = {}) {
  MessageSnapshot m;
  m.id = 7;
  m.state = state;
  m.held = held;
  m.pending = pending;
  m.lease_owner = std::move(owner);
  return m;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("unchanged messages get the reason the action left them alone") {
  CHECK(unchanged_reason(Verb::hold, snap(3, true)) == "already held");
  CHECK(has(unchanged_reason(Verb::hold, snap(5)), "already DONE"));
  CHECK(unchanged_reason(Verb::release, snap(1)) == "not held (RECEIVED)");
  CHECK(has(unchanged_reason(Verb::retry, snap(3, true, 1)), "held: release it first"));
  CHECK(has(unchanged_reason(Verb::retry, snap(1)), "not routed yet (RECEIVED)"));
  CHECK(unchanged_reason(Verb::retry, snap(4, false, 1, "h:12")) == "being delivered now by h:12");
  CHECK(unchanged_reason(Verb::retry, snap(3, false, 0)) == "no pending deliveries");
}

TEST_CASE("bounce results read as what happened, per state") {
  BounceResult r;
  r.msg_id = 9;
  r.verdict = BounceVerdict::bounced;
  r.from = MsgState::received;
  r.held = true;
  r.bounced = 2;
  r.reported = 2;
  r.dsn_id = 12;
  auto out = describe_bounce(r);
  CHECK(out.changed);
  CHECK(out.detail == "RECEIVED (held): bounced 2 envelope recipients; DSN msg=12 queued to the sender; now DONE");
  r.dsn_id.reset();
  r.null_sender = true;
  CHECK(has(describe_bounce(r).detail, "no DSN: the sender is <>"));

  BounceResult live;
  live.verdict = BounceVerdict::live_lease;
  live.from = MsgState::delivering;
  live.lease_owner = "mb1:4242";
  live.lease_expires = "2026-12-05T01:00:00Z";
  auto refused = describe_bounce(live);
  CHECK_FALSE(refused.changed);
  CHECK(has(refused.detail, "mb1:4242 holds a live lease until 2026-12-05T01:00:00Z"));
  CHECK(has(refused.detail, "--force"));

  BounceResult gone;
  gone.verdict = BounceVerdict::no_such_message;
  CHECK(describe_bounce(gone).detail == "no such message");
  BounceResult done;
  done.verdict = BounceVerdict::already_done;
  done.from = MsgState::done;
  CHECK(has(describe_bounce(done).detail, "already DONE"));
}

TEST_CASE("an action exits 1 when it changed nothing, or left a named message unchanged") {
  ActionReport report{"hold", 2, {{1, true, "held"}, {2, false, "already held"}}};
  CHECK(report.changed() == 1);
  CHECK(report.exit_status({}) == kExitOk);   // a filter: something changed
  CHECK(report.exit_status({1}) == kExitOk);  // every named id changed
  CHECK(report.exit_status({1, 2}) == kExitFailed);
  CHECK(report.exit_status({3}) == kExitFailed);  // named, not even selected
  ActionReport nothing{"release", 1, {{2, false, "not held"}}};
  CHECK(nothing.exit_status({}) == kExitFailed);
  auto j = report.to_json();
  CHECK(j["action"] == "hold");
  CHECK(j["changed"] == 1);
  CHECK(j["messages"][1]["detail"] == "already held");
}
