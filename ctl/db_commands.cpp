// wsmtpctl db migrate | status
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "json_output.h"
#include "pg/migrate.h"
#include "pg/shards.h"

namespace wsmtp::ctl {

void add_db_commands(CLI::App& app, Context& ctx) {
  auto* db = app.add_subcommand("db", "schema migrations");
  db->require_subcommand(1);

  auto* migrate = db->add_subcommand("migrate", "apply the missing schema migrations");
  migrate->callback([&ctx] {
    ctx.action = [&ctx] {
      // The directory first, then each shard in its own database (a shard in
      // the directory's database is migrated once), then each shard's
      // identity: a shard is never half-claimed before its schema is current.
      const auto& database = ctx.database();
      Json databases = Json::array();
      auto run = [&](const std::string& what, pqxx::connection& conn) {
        auto applied = common::pg::migrate(conn, common::pg::embedded_migrations());
        auto status = common::pg::schema_status(conn, common::pg::embedded_migrations());
        Json list = Json::array();
        for (const auto& m : applied) list.push_back({{"version", m.version}, {"name", m.name}});
        databases.push_back({{"database", what}, {"database_version", status.database_version}, {"applied", list}});
        if (ctx.json) return;
        for (const auto& m : applied) std::cout << fmt::format("{}: applied {:03} {}\n", what, m.version, m.name);
        std::cout << fmt::format("{}: schema at version {} ({} applied now)\n", what, status.database_version,
                                 applied.size());
      };
      run(database.single() ? "database" : "directory", ctx.db());
      for (const auto& shard : database.shards)
        if (!database.is_directory(shard)) run("shard " + shard.name, ctx.shard(shard));
      for (const auto& shard : database.shards) common::pg::claim_shard_identity(ctx.shard(shard), shard);
      if (ctx.json) {
        const auto& first = databases.front();
        print_json(
            {{"database_version", first["database_version"]}, {"applied", first["applied"]}, {"databases", databases}});
      }
      return kExitOk;
    };
  });

  auto* status = db->add_subcommand("status", "show the schema version of the database and of this binary");
  status->callback([&ctx] {
    ctx.action = [&ctx] {
      auto s = common::pg::schema_status(ctx.db(), common::pg::embedded_migrations());
      if (ctx.json) {
        Json pending = Json::array();
        for (const auto& m : s.pending) pending.push_back({{"version", m.version}, {"name", m.name}});
        print_json({{"database_version", s.database_version},
                    {"binary_version", s.binary_version},
                    {"pending", s.pending.size()},
                    {"pending_migrations", pending}});
      } else {
        std::cout << fmt::format(
            "database schema version: {}\nbinary schema version:   {}\npending migrations:      {}\n",
            s.database_version, s.binary_version, s.pending.size());
        for (const auto& m : s.pending) std::cout << fmt::format("  {:03} {}\n", m.version, m.name);
      }
      if (s.database_version > s.binary_version) {
        std::cerr << "wsmtpctl: the database is newer than this binary\n";
        return kExitFailed;
      }
      return kExitOk;
    };
  });
}

}  // namespace wsmtp::ctl
