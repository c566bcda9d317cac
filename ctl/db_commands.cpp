// wsmtpctl db migrate | status, over the directory and every queue shard
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "db_health.h"
#include "json_output.h"
#include "pg/migrate.h"
#include "pg/shards.h"

namespace wsmtp::ctl {
namespace {

// Migration 023 made shard_identity; before it a database has none to read.
constexpr int kShardIdentityVersion = 23;

int binary_version() {
  const auto& all = common::pg::embedded_migrations();
  int v = 0;
  for (const auto& m : all) v = std::max(v, m.version);
  return v;
}

// What db status reads from one database. The one-server layout lets its
// errors reach main() as before; in a group an unreachable database is a
// reading like any other, and the others are still read.
void read_health(pqxx::connection& conn, DatabaseHealth& h) {
  auto s = common::pg::schema_status(conn, common::pg::embedded_migrations());
  h.database_version = s.database_version;
  h.binary_version = s.binary_version;
  h.pending = s.pending;
  if (s.database_version >= kShardIdentityVersion)
    if (auto found = common::pg::read_shard_identity(conn)) h.claimed = ClaimedIdentity{found->name, found->id};
  h.reachable = true;
}

Json health_json(const DatabaseHealth& h, const std::vector<std::string>& problems) {
  Json pending = Json::array();
  for (const auto& m : h.pending) pending.push_back({{"version", m.version}, {"name", m.name}});
  Json j = {{"name", h.name},
            {"role", database_role(h)},
            {"reachable", h.reachable},
            {"ok", problems.empty()},
            {"problems", problems}};
  if (h.reachable) {
    j["database_version"] = h.database_version;
    j["binary_version"] = h.binary_version;
    j["pending"] = h.pending.size();
    j["pending_migrations"] = pending;
  }
  if (h.is_shard) j["configured"] = {{"name", h.configured_name}, {"id", h.configured_id}};
  j["identity"] = h.claimed ? Json{{"name", h.claimed->name}, {"id", h.claimed->id}} : Json(nullptr);
  return j;
}

void print_group_table(const std::vector<DatabaseHealth>& rows, const std::vector<std::vector<std::string>>& problems) {
  std::cout << fmt::format("binary schema version: {}\n", binary_version());
  std::cout << fmt::format("{:<14} {:<16} {:<12} {:>7} {:>7} {}\n", "DATABASE", "ROLE", "STATUS", "VERSION", "PENDING",
                           "IDENTITY");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& h = rows[i];
    const std::string role = database_role(h);
    const std::string state = !h.reachable ? "unreachable" : problems[i].empty() ? "ok" : "PROBLEM";
    const std::string identity =
        h.claimed ? fmt::format("{} (id {})", h.claimed->name, h.claimed->id) : std::string(h.is_shard ? "none" : "-");
    if (h.reachable)
      std::cout << fmt::format("{:<14} {:<16} {:<12} {:>7} {:>7} {}\n", h.name, role, state, h.database_version,
                               h.pending.size(), identity);
    else
      std::cout << fmt::format("{:<14} {:<16} {:<12} {:>7} {:>7} {}\n", h.name, role, state, "-", "-", "-");
    for (const auto& m : h.pending) std::cout << fmt::format("  {}: {:03} {}\n", h.name, m.version, m.name);
  }
}

int db_status(Context& ctx) {
  const auto& database = ctx.database();
  const bool single = database.single();
  // The directory's row, which is also the row of a shard kept in the
  // directory's database; then each shard in a database of its own.
  std::vector<DatabaseHealth> rows;
  DatabaseHealth directory;
  directory.name = single ? "database" : "directory";
  directory.is_directory = true;
  for (const auto& shard : database.shards)
    if (database.is_directory(shard)) {
      directory.is_shard = true;
      directory.configured_name = shard.name;
      directory.configured_id = shard.id;
    }
  auto read = [&](DatabaseHealth h, auto connect) {
    if (single) {
      read_health(connect(), h);
      return h;
    }
    try {
      read_health(connect(), h);
    } catch (const pqxx::broken_connection& e) {
      h.error = e.what();
      while (!h.error.empty() && (h.error.back() == '\n' || h.error.back() == ' ')) h.error.pop_back();
      std::replace(h.error.begin(), h.error.end(), '\n', ' ');
    }
    return h;
  };
  rows.push_back(read(directory, [&]() -> pqxx::connection& { return ctx.db(); }));
  for (const auto& shard : database.shards) {
    if (database.is_directory(shard)) continue;
    DatabaseHealth h;
    h.name = shard.name;
    h.is_shard = true;
    h.configured_name = shard.name;
    h.configured_id = shard.id;
    rows.push_back(read(std::move(h), [&]() -> pqxx::connection& { return ctx.shard(shard); }));
  }
  std::vector<std::vector<std::string>> problems;
  int status = kExitOk;
  for (const auto& h : rows) {
    problems.push_back(health_problems(h, single));
    if (!problems.back().empty()) status = std::max(status, h.reachable ? kExitFailed : kExitDatabase);
  }
  const auto& first = rows.front();
  if (ctx.json) {
    Json pending = Json::array();
    for (const auto& m : first.pending) pending.push_back({{"version", m.version}, {"name", m.name}});
    Json databases = Json::array();
    for (std::size_t i = 0; i < rows.size(); ++i) databases.push_back(health_json(rows[i], problems[i]));
    print_json({{"database_version", first.database_version},
                {"binary_version", binary_version()},
                {"pending", first.pending.size()},
                {"pending_migrations", pending},
                {"databases", databases}});
  } else if (single) {
    std::cout << fmt::format("database schema version: {}\nbinary schema version:   {}\npending migrations:      {}\n",
                             first.database_version, first.binary_version, first.pending.size());
    for (const auto& m : first.pending) std::cout << fmt::format("  {:03} {}\n", m.version, m.name);
  } else {
    print_group_table(rows, problems);
  }
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (const auto& p : problems[i])
      std::cerr << fmt::format("wsmtpctl: {}{}: {}\n", !rows[i].is_directory ? "shard " : "", rows[i].name, p);
  return status;
}

}  // namespace

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
      // Every database must be current before any shard takes mail, so an
      // unreachable one stops the command (exit 3), named; a rerun completes it.
      auto named = [](const common::ShardConfig& shard, auto step) {
        try {
          step();
        } catch (const pqxx::broken_connection& e) {
          throw pqxx::broken_connection(fmt::format("shard {}: {}", shard.name, e.what()));
        }
      };
      for (const auto& shard : database.shards)
        if (!database.is_directory(shard)) named(shard, [&] { run("shard " + shard.name, ctx.shard(shard)); });
      for (const auto& shard : database.shards)
        named(shard, [&] { common::pg::claim_shard_identity(ctx.shard(shard), shard); });
      if (ctx.json) {
        const auto& first = databases.front();
        print_json(
            {{"database_version", first["database_version"]}, {"applied", first["applied"]}, {"databases", databases}});
      }
      return kExitOk;
    };
  });

  auto* status = db->add_subcommand(
      "status",
      "show each database (the directory, each shard): reachable, schema version against this binary's, "
      "pending migrations, shard identity");
  status->callback([&ctx] { ctx.action = [&ctx] { return db_status(ctx); }; });
}

}  // namespace wsmtp::ctl
