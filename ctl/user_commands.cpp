// wsmtpctl user add|passwd|remove|disable|enable|list — SMTP AUTH credentials.
// Passwords are read from the terminal (echo off) or from stdin, never from an
// argument, which other users could read in the process list or shell history.
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "json_output.h"
#include "pg/auth_users.h"

namespace wsmtp::ctl {
namespace {

std::string read_line_noecho(const char* prompt) {
  termios old{};
  bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    std::cerr << prompt << std::flush;
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::cerr << "\n";
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string read_new_password() {
  auto password = read_line_noecho("New password: ");
  if (::isatty(STDIN_FILENO) && read_line_noecho("Repeat password: ") != password)
    throw CommandError("the passwords do not match");
  if (password.empty()) throw CommandError("empty password (give it on the prompt or one line on stdin)");
  return password;
}

struct UserArgs {
  std::string name;
};

void set_password(Context& ctx, const std::string& name, bool must_exist) {
  auto password = read_new_password();
  pqxx::work tx(ctx.db());
  bool exists = false;
  for (const auto& u : common::pg::list_auth_users(tx)) exists |= u == name;
  if (must_exist && !exists) throw CommandError(fmt::format("no user '{}'", name));
  if (!must_exist && exists) throw CommandError(fmt::format("user '{}' exists; use 'user passwd'", name));
  try {
    common::pg::set_auth_user(tx, name, password);
  } catch (const std::invalid_argument& e) {
    throw CommandError(e.what());
  }
  tx.commit();
  std::cout << (must_exist ? "changed password of " : "added user ") << name << "\n";
}

}  // namespace

void add_user_commands(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("user", "SMTP AUTH users (password from the prompt or stdin)");
  cmd->require_subcommand(1);
  auto args = std::make_shared<UserArgs>();  // co-owned by the callbacks below
  auto named = [&](const char* name, const char* help) {
    auto* sub = cmd->add_subcommand(name, help);
    sub->add_option("username", args->name, "user name (usually an address)")->required();
    return sub;
  };
  named("add", "add a user; reads the password")->callback([&ctx, args] {
    ctx.action = [&ctx, args] { return set_password(ctx, args->name, false), kExitOk; };
  });
  named("passwd", "change a user's password; reads the password")->callback([&ctx, args] {
    ctx.action = [&ctx, args] { return set_password(ctx, args->name, true), kExitOk; };
  });
  named("remove", "remove a user")->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      pqxx::work tx(ctx.db());
      if (!common::pg::delete_auth_user(tx, args->name)) throw CommandError(fmt::format("no user '{}'", args->name));
      tx.commit();
      std::cout << "removed user " << args->name << "\n";
      return kExitOk;
    };
  });
  for (bool disable : {true, false}) {
    named(disable ? "disable" : "enable", disable ? "refuse AUTH for a user" : "allow AUTH again")
        ->callback([&ctx, args, disable] {
          ctx.action = [&ctx, args, disable] {
            pqxx::work tx(ctx.db());
            if (!common::pg::set_auth_user_disabled(tx, args->name, disable))
              throw CommandError(fmt::format("no user '{}'", args->name));
            tx.commit();
            std::cout << (disable ? "disabled " : "enabled ") << args->name << "\n";
            return kExitOk;
          };
        });
  }
  cmd->add_subcommand("list", "list users")->callback([&ctx] {
    ctx.action = [&ctx] {
      pqxx::read_transaction tx(ctx.db());
      auto users = common::pg::list_auth_users(tx);
      if (ctx.json) {
        print_json(users);
        return kExitOk;
      }
      for (const auto& u : users) std::cout << u << "\n";
      return kExitOk;
    };
  });
}

}  // namespace wsmtp::ctl
