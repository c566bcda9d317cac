#include "shard_sweep.h"

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "queue_id.h"
#include "pg/shards.h"

namespace wsmtp::ctl {
namespace {

// libpq's messages end in a newline and may span lines; one line on stderr.
std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

}  // namespace

ShardSweep::ShardSweep(Context& ctx) : ctx_(ctx) {}

void ShardSweep::each(const std::function<void(const common::ShardConfig&, pqxx::connection&)>& step) {
  for (const auto& shard : ctx_.database().shards) visit(shard, step);
}

bool ShardSweep::visit(const common::ShardConfig& shard,
                       const std::function<void(const common::ShardConfig&, pqxx::connection&)>& step) {
  // One server: its failures are the command's, reported by main() as always.
  if (ctx_.database().single()) {
    step(shard, ctx_.shard(shard));
    return true;
  }
  if (problem(shard.name)) return false;  // reported once, not retried within one command
  auto report = [&](bool unreachable, std::string error) {
    problems_.push_back({shard.name, unreachable, one_line(std::move(error))});
    const auto& p = problems_.back();
    if (unreachable)
      std::cerr << fmt::format("wsmtpctl: shard {} unreachable: {}\n", p.shard, p.error);
    else
      std::cerr << fmt::format("wsmtpctl: {}\n", p.error);
  };
  try {
    auto& conn = ctx_.shard(shard);
    if (!checked_.contains(shard.id)) {
      common::pg::require_shard_identity(conn, ctx_.database(), shard);
      checked_.insert(shard.id);
    }
    step(shard, conn);
    return true;
  } catch (const pqxx::broken_connection& e) {
    report(true, e.what());
  } catch (const pqxx::in_doubt_error& e) {
    // The connection broke during COMMIT: whether this shard's part was done is
    // unknown until someone looks (wsmtpctl list/show on that shard).
    report(true,
           fmt::format("the connection broke during commit; this shard's part may or may not be done ({})", e.what()));
  } catch (const common::pg::WrongShard& e) {
    report(false, e.what());
  } catch (const pqxx::undefined_table&) {
    report(false, fmt::format("shard {}: its database has no WSMTP schema; run 'wsmtpctl db migrate'", shard.name));
  } catch (const pqxx::sql_error& e) {
    // The shard's transaction rolled back (a lock timeout, say); the shards
    // done before it stay done, so the command goes on and reports.
    report(false, fmt::format("shard {}: database error: {}", shard.name, e.what()));
  }
  return false;
}

const ShardProblem* ShardSweep::problem(const std::string& shard) const {
  auto it = std::find_if(problems_.begin(), problems_.end(), [&](const auto& p) { return p.shard == shard; });
  return it == problems_.end() ? nullptr : &*it;
}

int ShardSweep::exit_status(int status) const {
  if (std::any_of(problems_.begin(), problems_.end(), [](const auto& p) { return p.unreachable; }))
    return kExitDatabase;
  if (!problems_.empty()) return kExitFailed;
  return status;
}

Json ShardSweep::shards_json() const {
  Json out = Json::array();
  for (const auto& shard : ctx_.database().shards) {
    Json j = {{"name", shard.name}, {"id", shard.id}};
    const auto* p = problem(shard.name);
    j["ok"] = p == nullptr;
    j["reachable"] = p == nullptr || !p->unreachable;
    if (p) j["error"] = p->error;
    out.push_back(std::move(j));
  }
  return out;
}

std::map<int, std::vector<std::int64_t>> ids_by_shard(const std::vector<std::int64_t>& ids) {
  std::map<int, std::vector<std::int64_t>> out;
  for (auto id : ids) out[common::shard_of(id)].push_back(id);
  return out;
}

std::optional<common::pg::MessageFilter> filter_for_shard(const common::pg::MessageFilter& filter,
                                                          const std::map<int, std::vector<std::int64_t>>& named,
                                                          int shard_id) {
  if (named.empty()) return filter;
  auto it = named.find(shard_id);
  if (it == named.end()) return std::nullopt;
  auto mine = filter;
  mine.ids = it->second;
  return mine;
}

}  // namespace wsmtp::ctl
