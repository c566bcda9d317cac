// Deadlines a client cannot push back by trickling bytes (issue 13; Postfix's
// smtpd_per_record_deadline, smtpd_min_data_rate): a whole command line, from
// when the listener starts waiting for it to its LF; a message's data, allowed
// data_timeout plus one second per min_data_rate bytes received; and the
// session's lifetime. Pure: time is passed in, so the loop arms one timer at
// next() and asks expired() when it fires. Time spent parked (waiting for the
// store, or held back by the tarpit) is not the client's: it is added back when
// the session reads again. Time the client takes to read our replies is its own.
#pragma once

#include <chrono>
#include <cstdint>

namespace wsmtp::listener {

class Deadlines {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Kind { none, command, data, session };

  struct Limits {
    std::chrono::seconds command_deadline{300};
    std::chrono::seconds data_base{600};          // what a message gets before its bytes count
    std::uint64_t min_data_rate = 500;            // bytes/s; 0: no data deadline
    std::chrono::seconds max_session_time{3600};  // 0: none
  };

  Deadlines(const Limits& limits, Clock::time_point start);

  // The session's phase after a round of input. in_message: a DATA or BDAT body
  // has begun and is not finished (a BDAT command between chunks is part of
  // it); reading_data: the next input is message bytes, not a command line;
  // parked: the session is not reading, through no fault of the client.
  void update(Clock::time_point now, bool in_message, bool reading_data, bool parked);
  // A command line was consumed: the next one's deadline starts now.
  void command_done(Clock::time_point now) { command_start_ = now; }
  // Bytes of message data received: each one extends the data deadline.
  void data_received(std::uint64_t bytes) { data_bytes_ += bytes; }

  // The earliest deadline that applies now; Clock::time_point::max() if none.
  Clock::time_point next() const;
  // Which deadline has passed at now, if any. A message that keeps the minimum
  // rate may outlive max_session_time: the session then ends at the next
  // command, so its whole length is bounded by max_session_time plus one
  // message (data_timeout + max_message_size / min_data_rate).
  Kind expired(Clock::time_point now) const;

 private:
  Clock::time_point command_end() const { return command_start_ + limits_.command_deadline; }
  Clock::time_point data_end() const;

  Limits limits_;
  Clock::time_point session_end_;
  Clock::time_point command_start_;
  Clock::time_point message_start_{};
  std::uint64_t data_bytes_ = 0;
  Clock::time_point parked_since_{};
  bool in_message_ = false;
  bool reading_data_ = false;
  bool parked_ = false;
};

}  // namespace wsmtp::listener
