// The data deadline follows Postfix's model: a base allowance, then the time
// the bytes received so far would take at the minimum rate. A slow but honest
// client keeps extending it; one that sends a byte now and then does not.
#include "deadlines.h"

#include <algorithm>

namespace wsmtp::listener {

Deadlines::Deadlines(const Limits& limits, Clock::time_point start)
    : limits_(limits),
      session_end_(limits.max_session_time.count() > 0 ? start + limits.max_session_time : Clock::time_point::max()),
      command_start_(start) {}

void Deadlines::update(Clock::time_point now, bool in_message, bool reading_data, bool parked) {
  if (parked != parked_) {
    parked_ = parked;
    if (parked) {
      parked_since_ = now;
    } else {
      // The store's (or the tarpit's) time is given back; the lifetime is not
      // shifted: it is a bound on the whole session.
      auto idle = now - parked_since_;
      command_start_ += idle;
      message_start_ += idle;
    }
  }
  // The bytes are counted from the DATA (or BDAT) line on, and may be counted
  // before this call sees the message begin: they are forgotten when it ends.
  if (in_message && !in_message_) message_start_ = now;
  if (!in_message && in_message_) data_bytes_ = 0;
  // After a DATA's final dot (or a BDAT chunk) the wait for a command begins.
  if (reading_data_ && !reading_data) command_start_ = now;
  in_message_ = in_message;
  reading_data_ = reading_data;
}

Deadlines::Clock::time_point Deadlines::data_end() const {
  if (limits_.min_data_rate == 0) return Clock::time_point::max();
  auto earned = std::chrono::microseconds(data_bytes_ * 1000000 / limits_.min_data_rate);
  return message_start_ + limits_.data_base + earned;
}

Deadlines::Clock::time_point Deadlines::next() const {
  if (parked_) return Clock::time_point::max();
  auto out = Clock::time_point::max();
  if (!reading_data_) out = std::min(out, command_end());
  if (in_message_) out = std::min(out, data_end());
  if (!in_message_) out = std::min(out, session_end_);
  return out;
}

Deadlines::Kind Deadlines::expired(Clock::time_point now) const {
  if (parked_) return Kind::none;
  if (!reading_data_ && now >= command_end()) return Kind::command;
  if (in_message_ && now >= data_end()) return Kind::data;
  if (!in_message_ && now >= session_end_) return Kind::session;
  return Kind::none;
}

}  // namespace wsmtp::listener
