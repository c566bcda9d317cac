// The message-selection flags shared by list, hold, release, delete, retry and
// bounce, so every bulk command selects messages the same way `list` shows them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "db/message_filter.h"

namespace wsmtp::ctl {

struct FilterArgs {
  std::vector<std::int64_t> ids;
  std::string state, older_than, sender, recipient, client;
  bool held = false, not_held = false, deferred = false, all = false;
  int limit = 1000;
};

// Adds the ids positional and the filter flags to cmd. bulk: the command acts on
// messages, so --all is offered and an empty selection is refused without it.
void add_filter_options(CLI::App* cmd, FilterArgs& args, bool bulk);

// For an option taking message ids: accepts a queue id as the 250 reply, the
// Received: header and the logs show it (common/queue_id.h) and turns it into
// the message id the option stores; anything else is a usage error (exit 2).
CLI::Validator queue_id_arg();

// Validates and converts; throws CommandError naming the bad flag.
common::pg::MessageFilter to_filter(const FilterArgs& args, bool bulk);

// "RECEIVED", "received" or "1" -> state; nullopt if none of those.
std::optional<common::MsgState> parse_state(const std::string& text);

}  // namespace wsmtp::ctl
