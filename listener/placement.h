// Where the listener puts a new message: on one of the queue shards, chosen by
// weight among those in rotation. A shard is in rotation while it answers (no
// connection error since its last good health check), has weight > 0, and is
// not full; full shards are used only once every shard is full (MAIL is then
// refused with 452, and sessions already past MAIL still get their message
// stored, as with one database). Thread-safe and lock-free for pick(): loops
// read, store workers and probes write. It knows no SQL and no threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wsmtp::listener {

class Placement {
 public:
  struct Shard {
    std::string name;
    int id = 0;
    int weight = 1;
  };

  // shards in configuration order. track_health false (one shard: there is
  // nowhere else to put mail) keeps every shard reachable whatever is reported,
  // so each message tries the database, as before the group existed.
  Placement(std::vector<Shard> shards, bool track_health);

  // The shard for a new message, from a uniformly distributed draw; nullopt
  // when no shard can take mail. Thread-safe.
  std::optional<std::size_t> pick(std::uint32_t draw) const;
  // The same with a draw of this thread's own generator.
  std::optional<std::size_t> pick() const;

  // Health: true if this changed the shard's state (the caller logs it once).
  // Ignored (false) without health tracking. Thread-safe.
  bool set_reachable(std::size_t index, bool reachable);
  // Its last queue size sample; true if this changed it. Thread-safe.
  bool set_full(std::size_t index, bool full);

  bool reachable(std::size_t index) const;
  bool in_rotation(std::size_t index) const;
  // Set while every shard with weight > 0 is full: MAIL gets 452. Lives as
  // long as the Placement.
  const std::atomic<bool>& all_full_flag() const { return all_full_; }

  std::size_t size() const { return shards_.size(); }
  const Shard& shard(std::size_t index) const { return shards_.at(index); }
  // The index of the shard with this id (the one a queue id names), or nullopt.
  std::optional<std::size_t> index_of(int shard_id) const;
  // "q1" for a message id issued by shard q1; "" for an unknown shard.
  const std::string& name_of_message(std::int64_t msg_id) const;

 private:
  struct State {
    std::atomic<bool> reachable{true};
    std::atomic<bool> full{false};
  };
  void update_all_full();

  const std::vector<Shard> shards_;
  const bool track_health_;
  std::unique_ptr<State[]> states_;  // one per shard; atomics cannot live in a vector
  std::atomic<bool> all_full_{false};
};

}  // namespace wsmtp::listener
