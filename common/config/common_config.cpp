#include "config/common_config.h"

#include <algorithm>
#include <set>

#include "queue_id.h"

namespace wsmtp::common {

using namespace std::chrono_literals;

namespace {

constexpr const char* kShardPrefix = "shard ";

void refuse_password(SectionReader& s, const std::string& conninfo) {
  if (conninfo.find("password=") != std::string::npos)
    s.fail("conninfo", "must not contain a password; use ~/.pgpass or a service file");
}

bool valid_shard_name(const std::string& name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

ShardConfig read_shard(const ConfigFile& file, const std::string& section) {
  SectionReader s(file, section);
  ShardConfig shard;
  shard.name = section.substr(std::string(kShardPrefix).size());
  if (!valid_shard_name(shard.name))
    s.fail("conninfo", "the shard's name \"" + shard.name + "\" must be 1-63 letters, digits, '-' or '_'");
  shard.id = static_cast<int>(s.get_int("id", -1, 0, kMaxShardId));
  if (shard.id < 0) s.fail("id", "is required: the shard's number, part of every queue id it issues");
  shard.weight = static_cast<int>(s.get_int("weight", shard.weight, 0, 1000));
  shard.conninfo = s.get_string("conninfo", "");
  if (shard.conninfo.empty()) s.fail("conninfo", "is required for a shard");
  refuse_password(s, shard.conninfo);
  s.finish();
  return shard;
}

}  // namespace

const ShardConfig* DatabaseConfig::shard_by_id(int id) const {
  for (const auto& s : shards)
    if (s.id == id) return &s;
  return nullptr;
}

DatabaseConfig read_database_config(const ConfigFile& file) {
  SectionReader s(file, "database");
  DatabaseConfig c;
  c.conninfo = s.get_string("conninfo", "");
  refuse_password(s, c.conninfo);
  s.finish();
  std::set<int> ids;
  std::set<std::string> conninfos;
  for (const auto& section : file.sections_starting_with(kShardPrefix)) {
    auto shard = read_shard(file, section);
    SectionReader named(file, section);
    if (!ids.insert(shard.id).second) named.fail("id", "another shard already has id " + std::to_string(shard.id));
    if (!conninfos.insert(shard.conninfo).second) named.fail("conninfo", "another shard already uses this database");
    c.shards.push_back(std::move(shard));
  }
  if (c.shards.empty()) {
    c.shards.push_back({.name = "default", .id = 0, .weight = 1, .conninfo = c.conninfo});
  } else if (std::none_of(c.shards.begin(), c.shards.end(), [](const ShardConfig& sh) { return sh.weight > 0; })) {
    SectionReader(file, kShardPrefix + c.shards.front().name)
        .fail("weight", "every shard has weight 0: no shard would take new mail");
  }
  std::sort(c.shards.begin(), c.shards.end(), [](const ShardConfig& a, const ShardConfig& b) { return a.id < b.id; });
  return c;
}

QueueConfig read_queue_config(const ConfigFile& file) {
  SectionReader s(file, "queue");
  QueueConfig c;
  // A lease must outlive the slowest unit of work (a large message to a slow
  // relay), but not by so much that a crashed worker's mail waits long.
  c.lease_time = s.get_duration("lease_time", c.lease_time, 2s, 24h);
  c.max_expired_claims = static_cast<int>(s.get_int("max_expired_claims", c.max_expired_claims, 1, 1000));
  // NOTIFY wakes idle workers at once; the poll is only the fallback.
  c.poll_interval = s.get_duration("poll_interval", c.poll_interval, 1s, 1h);
  // Batches over latency: a burst is claimed a few dozen messages at a time
  // instead of one by one, for up to this much delay per stage when idle.
  c.gather_time = std::chrono::milliseconds(s.get_int("gather_time_ms", c.gather_time.count(), 0, 1000));
  c.queue_lifetime = s.get_duration("queue_lifetime", c.queue_lifetime, 60s, 60 * 24h);
  s.finish();
  return c;
}

}  // namespace wsmtp::common
