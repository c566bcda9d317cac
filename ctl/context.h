// What every wsmtpctl command shares: the global options, a lazily opened
// database connection, and the action chosen on the command line (run after
// parsing, so errors become messages and exit codes, not exceptions in CLI11).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <pqxx/pqxx>

#include "address.h"
#include "cli.h"
#include "config/common_config.h"

namespace wsmtp::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // the command ran and could not do what was asked
inline constexpr int kExitUsage = 2;     // bad arguments or configuration
inline constexpr int kExitDatabase = 3;  // the directory or a queue shard is unreachable

// A refusal the operator must see ("no message 42"): printed, exit kExitFailed.
class CommandError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Arguments CLI11 cannot check alone ("--lmtp x: expected HOST:PORT"): printed,
// exit kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Context {
 public:
  common::CommonOptions options;
  bool json = false;
  std::function<int()> action;

  // The [database] section and the [shard NAME] sections, read on first use.
  const common::DatabaseConfig& database();
  // The directory's connection, opened on first use (configuration's conninfo
  // or PG* variables).
  pqxx::connection& db();
  // A shard's connection, opened on first use; the directory's own when the
  // shard is in the directory's database.
  pqxx::connection& shard(const common::ShardConfig& shard);

 private:
  std::optional<common::DatabaseConfig> database_;
  std::unique_ptr<pqxx::connection> conn_;
  std::map<int, std::unique_ptr<pqxx::connection>> shard_conns_;
};

// A mailbox address as an argument (local@domain, UTF-8 allowed, no address
// literal), parsed by common::parse_mailbox. Throws CommandError naming the text.
common::Address require_address(const std::string& text);

// Throws CommandError unless domain is one of our local domains, suggesting
// `wsmtpctl domain add`.
void require_local_domain(pqxx::transaction_base& tx, const std::string& domain);

void add_db_commands(CLI::App& app, Context& ctx);
void add_queue_commands(CLI::App& app, Context& ctx);
void add_directory_commands(CLI::App& app, Context& ctx);
void add_message_commands(CLI::App& app, Context& ctx);
void add_user_commands(CLI::App& app, Context& ctx);
void add_routing_commands(CLI::App& app, Context& ctx);

}  // namespace wsmtp::ctl
