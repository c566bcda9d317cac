// wsmtpctl hold | release | delete | retry | bounce over the queue group: the
// same selection on every shard, each shard in its own transaction one after
// the other (a named id only on the shard its queue id names), one report
// summing them. What each action does to a shard's rows is the state
// machine's (common/pg/transitions_hold.h, operator_actions.h,
// transitions_bounce.h); a bounce's DSN is created in the bounced message's
// own shard, in the same transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "action_report.h"
#include "filter_options.h"

namespace wsmtp::ctl {

class Context;

struct FlagAction {
  const char* name;  // "hold"
  const char* verb;  // "held"
  Verb kind;
  // Changes what it can of ids in tx; returns the ids it changed.
  std::function<std::vector<std::int64_t>(pqxx::transaction_base&, const std::vector<std::int64_t>&)> apply;
};

// Runs a flag or due-time action on the selected messages of every shard and
// says, per message it left alone, why. Returns the exit status.
int run_flag_action(Context& ctx, const FilterArgs& args, const FlagAction& action);

struct BounceArgs {
  std::string reason = "5.0.0 delivery cancelled by the postmaster";
  bool force = false;
};

// wsmtpctl bounce on the selected messages of every shard. Returns the exit status.
int run_bounce(Context& ctx, const FilterArgs& args, const BounceArgs& bounce);

}  // namespace wsmtp::ctl
