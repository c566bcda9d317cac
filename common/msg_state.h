// The message states of DESIGN.md, mirroring schema/001 (msg_states). An
// integration test compares this enum with the database so the two cannot drift.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wsmtp::common {

enum class MsgState : std::int16_t {
  receiving = 0,
  received = 1,
  routing = 2,
  routed = 3,
  delivering = 4,
  done = 5,
};

inline constexpr std::array<MsgState, 6> kAllStates = {MsgState::receiving, MsgState::received,   MsgState::routing,
                                                       MsgState::routed,    MsgState::delivering, MsgState::done};

constexpr std::string_view state_name(MsgState s) {
  switch (s) {
    case MsgState::receiving:
      return "RECEIVING";
    case MsgState::received:
      return "RECEIVED";
    case MsgState::routing:
      return "ROUTING";
    case MsgState::routed:
      return "ROUTED";
    case MsgState::delivering:
      return "DELIVERING";
    case MsgState::done:
      return "DONE";
  }
  return "?";
}

constexpr std::optional<MsgState> state_from_int(int value) {
  if (value < 0 || value > 5) return std::nullopt;
  return static_cast<MsgState>(value);
}

// The allowed moves (schema/001 msg_transitions): forward steps plus the resets.
constexpr bool transition_allowed(MsgState from, MsgState to) {
  auto f = static_cast<int>(from), t = static_cast<int>(to);
  if (t == f + 1) return true;
  return (f == 2 && t == 1) || (f == 4 && t == 3);
}

// The state a stale message is reset to, if its state has one (2->1, 4->3).
constexpr std::optional<MsgState> reset_target(MsgState from) {
  if (from == MsgState::routing) return MsgState::received;
  if (from == MsgState::delivering) return MsgState::routed;
  return std::nullopt;
}

}  // namespace wsmtp::common
