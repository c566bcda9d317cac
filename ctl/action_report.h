// What wsmtpctl says about each message a bulk action selected: what changed,
// or why nothing did, as text and as --json, and the exit status that follows
// (an action that changes nothing it was asked to change exits 1). Pure: the
// database answers come in as values, so the wording is unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "json_output.h"
#include "pg/operator_actions.h"
#include "pg/transitions_bounce.h"

namespace wsmtp::ctl {

enum class Verb { hold, release, remove, retry };

struct MessageOutcome {
  std::int64_t id = 0;
  bool changed = false;
  std::string detail;  // what was done, or why nothing was
};

// Why `verb` left this message as it was.
std::string unchanged_reason(Verb verb, const common::pg::MessageSnapshot& m);

// One line about a bounce result ("bounced 2 deliveries; DSN msg=7 to the sender; now DONE").
MessageOutcome describe_bounce(const common::pg::BounceResult& r);

struct ActionReport {
  std::string action;  // "hold", "release", ...
  std::size_t selected = 0;
  std::vector<MessageOutcome> messages;

  std::size_t changed() const;
  // 0 if something changed and every explicitly named message did; else 1.
  int exit_status(const std::vector<std::int64_t>& named_ids) const;
  Json to_json() const;
};

}  // namespace wsmtp::ctl
