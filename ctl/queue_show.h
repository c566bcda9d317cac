// wsmtpctl queue: the group's queue summed over its shards, and each shard's own
// counts and backed-off destinations (text and --json).
#pragma once

namespace wsmtp::ctl {

class Context;

// Prints the report; returns the exit status (3 when a shard was unreachable:
// the sums then cover the others only, and say so).
int show_queue(Context& ctx, int top);

}  // namespace wsmtp::ctl
