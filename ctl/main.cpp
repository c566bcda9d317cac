// wsmtpctl: the operator's CLI. Parses the command line into one action, runs
// it, and turns every failure into a message on stderr and an exit status:
// 1 refused/failed, 2 bad arguments or configuration, 3 database unreachable
// (with queue shards: the directory or any shard; the command still covered
// the shards it could reach).
#include <iostream>

#include "context.h"
#include "log.h"
#include "pg/migrate.h"
#include "pg/shards.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  log::set_program("wsmtpctl");
  log::set_level(log::Level::warn);
  CLI::App app{"wsmtpctl: inspect and manage the WSMTP queue and directory", "wsmtpctl"};
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 success; 1 refused or failed (nothing changed, a named message did not, a shard's database is "
      "another shard's); 2 bad arguments or configuration; 3 a database unreachable: the directory, or a queue shard "
      "(reported as \"shard NAME unreachable\" on stderr; the command still covers the other shards).");
  // Global options (--config, --json) may also follow the subcommand.
  app.fallthrough();
  ctl::Context ctx;
  common::add_common_options(app, ctx.options);
  ctx.options.log_level = "warn";
  app.add_flag("--json", ctx.json, "machine-readable output where supported");
  ctl::add_db_commands(app, ctx);
  ctl::add_queue_commands(app, ctx);
  ctl::add_message_commands(app, ctx);
  ctl::add_directory_commands(app, ctx);
  ctl::add_user_commands(app, ctx);
  ctl::add_routing_commands(app, ctx);
  return common::run_main(app, argc, argv, [&]() -> int {
    try {
      return ctx.action ? ctx.action() : ctl::kExitUsage;
    } catch (const ctl::UsageError& e) {
      std::cerr << "wsmtpctl: " << e.what() << "\n";
      return ctl::kExitUsage;
    } catch (const ctl::CommandError& e) {
      std::cerr << "wsmtpctl: " << e.what() << "\n";
      return ctl::kExitFailed;
    } catch (const pqxx::broken_connection& e) {
      std::cerr << "wsmtpctl: cannot reach the database: " << e.what() << "\n";
      return ctl::kExitDatabase;
    } catch (const common::pg::WrongShard& e) {
      // A shard's database is another shard's (db migrate's claim).
      std::cerr << "wsmtpctl: " << e.what() << "\n";
      return ctl::kExitFailed;
    } catch (const common::pg::SchemaTooNew& e) {
      std::cerr << "wsmtpctl: " << e.what() << "\n";
      return ctl::kExitFailed;
    } catch (const pqxx::undefined_table& e) {
      std::cerr << "wsmtpctl: the database has no WSMTP schema; run 'wsmtpctl db migrate'\n";
      return ctl::kExitFailed;
    } catch (const pqxx::sql_error& e) {
      std::cerr << "wsmtpctl: database error: " << e.what() << "\n";
      return ctl::kExitFailed;
    }
  });
}
