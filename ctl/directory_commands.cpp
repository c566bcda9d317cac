// wsmtpctl domain | mailbox | alias  (add, list)
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "address.h"
#include "context.h"
#include "json_output.h"
#include "mailbox_destination.h"
#include "pg/mailbox_quota.h"
#include "pg/directory.h"
#include "db/directory_admin.h"
#include "quota_args.h"

namespace wsmtp::ctl {
namespace {

std::string describe_quota(const common::pg::MailboxQuota& q) {
  if (!q.limited()) return "none";
  std::string out;
  if (q.bytes) out = fmt::format("{} bytes", *q.bytes);
  if (q.messages) out += fmt::format("{}{} messages", out.empty() ? "" : ", ", *q.messages);
  return out;
}

Json quota_json(const std::optional<common::pg::MailboxQuota>& q) {
  if (!q || !q->limited()) return nullptr;
  return {{"bytes", q->bytes ? Json(*q->bytes) : Json(nullptr)},
          {"messages", q->messages ? Json(*q->messages) : Json(nullptr)}};
}

Json mailbox_json(const common::MailboxTarget& m) {
  return {{"address", m.address}, {"transport", m.transport}, {"destination", m.maildir}};
}

struct Args {
  std::string name;
  DestinationArgs destination;
  std::string quota;
  std::string quota_messages;
  std::vector<std::string> targets;
  std::string target;
  std::string domain;
};

void add_domain_commands(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("domain", "local domains");
  cmd->require_subcommand(1);
  auto args = std::make_shared<Args>();  // co-owned by the callbacks below
  auto* add = cmd->add_subcommand("add", "add a local domain");
  add->add_option("domain", args->name, "domain name")->required();
  add->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto name = common::to_lower_ascii(args->name);
      if (!common::is_valid_domain(name, true))
        throw CommandError(fmt::format("'{}' is not a valid domain", args->name));
      pqxx::work tx(ctx.db());
      bool added = common::pg::add_domain(tx, name);
      tx.commit();
      std::cout << (added ? "added domain " : "domain already present: ") << name << "\n";
      return kExitOk;
    };
  });
  auto* rm = cmd->add_subcommand("remove", "remove a local domain with its mailboxes and aliases");
  rm->add_option("domain", args->name, "domain name")->required();
  rm->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto name = common::to_lower_ascii(args->name);
      pqxx::work tx(ctx.db());
      auto counts = common::pg::domain_counts(tx, name);
      if (!common::pg::remove_domain(tx, name)) throw CommandError(fmt::format("no local domain '{}'", name));
      tx.commit();
      std::cout << fmt::format("removed domain {} ({} mailboxes, {} aliases)\n", name, counts.mailboxes,
                               counts.aliases);
      return kExitOk;
    };
  });
  auto* show = cmd->add_subcommand("show", "show a local domain");
  show->add_option("domain", args->name, "domain name")->required();
  show->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto name = common::to_lower_ascii(args->name);
      pqxx::read_transaction tx(ctx.db());
      auto counts = common::pg::domain_counts(tx, name);
      if (!counts.exists) throw CommandError(fmt::format("no local domain '{}'", name));
      if (ctx.json) {
        print_json({{"domain", name}, {"mailboxes", counts.mailboxes}, {"aliases", counts.aliases}});
        return kExitOk;
      }
      std::cout << fmt::format("domain {}\nmailboxes {}\naliases {}\n", name, counts.mailboxes, counts.aliases);
      return kExitOk;
    };
  });
  auto* list = cmd->add_subcommand("list", "list local domains");
  list->callback([&ctx] {
    ctx.action = [&ctx] {
      pqxx::read_transaction tx(ctx.db());
      auto domains = common::pg::list_domains(tx);
      if (ctx.json) {
        print_json(domains);
        return kExitOk;
      }
      for (const auto& d : domains) std::cout << d << "\n";
      return kExitOk;
    };
  });
}

void add_mailbox_commands(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("mailbox", "local mailboxes (Maildir, mbox or LMTP)");
  cmd->require_subcommand(1);
  auto args = std::make_shared<Args>();
  auto* add = cmd->add_subcommand("add", "add a mailbox delivered to a Maildir, an mbox spool or an LMTP server");
  add->add_option("address", args->name, "mailbox address")->required();
  add->add_option("--transport", args->destination.transport, "maildir (default), mbox or lmtp");
  add->add_option("--maildir", args->destination.maildir, "maildir: absolute path of the Maildir");
  add->add_option("--mbox", args->destination.mbox, "mbox: absolute path of the spool file");
  add->add_option("--lmtp", args->destination.lmtp,
                  "lmtp: the server, HOST:PORT or unix:/path/to/socket (wdeliver's lmtp_server, if set, overrides it)");
  add->add_option("--quota", args->quota, "most bytes its Maildir may hold (500M, 2G, ...; default none)");
  add->add_option("--quota-messages", args->quota_messages, "most messages its Maildir may hold (default none)");
  add->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name);
      auto destination = mailbox_destination(args->destination);
      common::pg::MailboxQuota quota;
      if (!args->quota.empty()) quota.bytes = parse_quota_bytes(args->quota);
      if (!args->quota_messages.empty()) quota.messages = parse_quota_messages(args->quota_messages);
      // The quota is kept in the Maildir++ maildirsize file (deliver/quota.h):
      // an mbox spool or an LMTP server has none for wdeliver to enforce.
      if (quota.limited() && args->destination.transport != "maildir")
        throw UsageError("--quota and --quota-messages apply to Maildir mailboxes only");
      auto domain = common::to_lower_ascii(address.domain);
      pqxx::work tx(ctx.db());
      require_local_domain(tx, domain);
      // Adding the same mailbox again is a no-op that succeeds (setup scripts
      // rerun); a different one under the same address is refused, not merged.
      if (auto existing = common::pg::find_mailbox(tx, address.lookup_key())) {
        if (existing->transport != args->destination.transport || existing->maildir != destination)
          throw CommandError(fmt::format("mailbox {} already exists with {} {}; remove it first to change it",
                                         existing->address, existing->transport, existing->maildir));
        std::cout << "mailbox already present: " << existing->address << "\n";
        return kExitOk;
      }
      common::pg::add_mailbox(tx, address.lookup_key(), domain, destination, args->destination.transport);
      if (quota.limited()) common::pg::set_mailbox_quota(tx, address.lookup_key(), quota);
      tx.commit();
      std::cout << fmt::format("added mailbox {} ({} {})\n", address.lookup_key(), args->destination.transport,
                               destination);
      if (quota.limited()) std::cout << "quota " << describe_quota(quota) << "\n";
      return kExitOk;
    };
  });
  auto* set_quota = cmd->add_subcommand("quota", "set or lift the quota of a mailbox's Maildir");
  set_quota->add_option("address", args->name, "mailbox address")->required();
  set_quota->add_option("size", args->quota, "most bytes (500M, 2G, 1048576) or none")->required();
  set_quota->add_option("--messages", args->quota_messages, "most messages, or none (default: unchanged)");
  set_quota->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name).lookup_key();
      auto bytes = parse_quota_bytes(args->quota);
      pqxx::work tx(ctx.db());
      auto current = common::pg::mailbox_quota(tx, address);
      if (!current) throw CommandError(fmt::format("no mailbox '{}'", address));
      current->bytes = bytes;
      if (!args->quota_messages.empty()) current->messages = parse_quota_messages(args->quota_messages);
      common::pg::set_mailbox_quota(tx, address, *current);
      tx.commit();
      std::cout << fmt::format("mailbox {} quota {}\n", address, describe_quota(*current));
      return kExitOk;
    };
  });
  auto* rm = cmd->add_subcommand("remove", "remove a mailbox (its Maildir stays on disk)");
  rm->add_option("address", args->name, "mailbox address")->required();
  rm->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name).lookup_key();
      pqxx::work tx(ctx.db());
      if (!common::pg::remove_mailbox(tx, address)) throw CommandError(fmt::format("no mailbox '{}'", address));
      tx.commit();
      std::cout << "removed mailbox " << address << "\n";
      return kExitOk;
    };
  });
  auto* show = cmd->add_subcommand("show", "show a mailbox");
  show->add_option("address", args->name, "mailbox address")->required();
  show->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name).lookup_key();
      pqxx::read_transaction tx(ctx.db());
      auto m = common::pg::find_mailbox(tx, address);
      if (!m) throw CommandError(fmt::format("no mailbox '{}'", address));
      auto quota = common::pg::mailbox_quota(tx, address);
      auto full_since = common::pg::mailbox_full_since(tx, address);
      if (ctx.json) {
        auto j = mailbox_json(*m);
        j["quota"] = quota_json(quota);
        j["over_quota_since"] = full_since ? Json(*full_since) : Json(nullptr);
        print_json(j);
        return kExitOk;
      }
      std::cout << fmt::format("mailbox {}\ntransport {}\ndestination {}\n", m->address, m->transport, m->maildir);
      if (quota) std::cout << "quota " << describe_quota(*quota) << "\n";
      // What the listener answers meanwhile, so the admin knows why senders get 452.
      if (full_since)
        std::cout << "over quota since " << *full_since
                  << " (RCPT gets 452 4.2.2 until a copy fits or the quota is changed)\n";
      return kExitOk;
    };
  });
  auto* list = cmd->add_subcommand("list", "list mailboxes");
  list->add_option("--domain", args->domain, "only this domain");
  list->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      pqxx::read_transaction tx(ctx.db());
      auto mailboxes = common::pg::list_mailboxes(tx, common::to_lower_ascii(args->domain));
      if (ctx.json) {
        Json out = Json::array();
        for (const auto& m : mailboxes) out.push_back(mailbox_json(m));
        print_json(out);
        return kExitOk;
      }
      for (const auto& m : mailboxes) std::cout << fmt::format("{} {} {}\n", m.address, m.transport, m.maildir);
      return kExitOk;
    };
  });
}

void add_alias_commands(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("alias", "aliases (one address to many)");
  cmd->require_subcommand(1);
  auto args = std::make_shared<Args>();
  auto* add = cmd->add_subcommand("add", "add an alias and its targets");
  add->add_option("address", args->name, "alias address (in a local domain)")->required();
  add->add_option("targets", args->targets, "target addresses")->required();
  add->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name);
      for (const auto& t : args->targets) require_address(t);
      auto domain = common::to_lower_ascii(address.domain);
      pqxx::work tx(ctx.db());
      require_local_domain(tx, domain);
      for (const auto& t : args->targets) {
        bool added = common::pg::add_alias(tx, address.lookup_key(), domain, require_address(t).lookup_key());
        std::cout << fmt::format("{} {} -> {}\n",
                                 added ? "added alias" : "alias already present:", address.lookup_key(), t);
      }
      tx.commit();
      return kExitOk;
    };
  });
  auto* rm = cmd->add_subcommand("remove", "remove an alias, or one of its targets");
  rm->add_option("address", args->name, "alias address")->required();
  rm->add_option("target", args->target, "only this target");
  rm->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name).lookup_key();
      auto target = args->target.empty() ? std::string() : require_address(args->target).lookup_key();
      pqxx::work tx(ctx.db());
      int n = common::pg::remove_alias(tx, address, target);
      if (!n) throw CommandError(fmt::format("no alias '{}'{}", address, target.empty() ? "" : " -> " + target));
      tx.commit();
      std::cout << fmt::format("removed {} target(s) of alias {}\n", n, address);
      return kExitOk;
    };
  });
  auto* show = cmd->add_subcommand("show", "show the targets of an alias");
  show->add_option("address", args->name, "alias address")->required();
  show->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto address = require_address(args->name).lookup_key();
      pqxx::read_transaction tx(ctx.db());
      auto targets = common::pg::alias_targets(tx, address);
      if (targets.empty()) throw CommandError(fmt::format("no alias '{}'", address));
      if (ctx.json) {
        print_json({{"address", address}, {"targets", targets}});
        return kExitOk;
      }
      for (const auto& t : targets) std::cout << address << " -> " << t << "\n";
      return kExitOk;
    };
  });
  auto* list = cmd->add_subcommand("list", "list aliases");
  list->add_option("--domain", args->domain, "only this domain");
  list->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      pqxx::read_transaction tx(ctx.db());
      auto aliases = common::pg::list_aliases(tx, common::to_lower_ascii(args->domain));
      if (ctx.json) {
        Json out = Json::array();
        for (const auto& a : aliases) out.push_back({{"address", a.address}, {"target", a.target}});
        print_json(out);
        return kExitOk;
      }
      for (const auto& a : aliases) std::cout << fmt::format("{} -> {}\n", a.address, a.target);
      return kExitOk;
    };
  });
}

}  // namespace

void add_directory_commands(CLI::App& app, Context& ctx) {
  add_domain_commands(app, ctx);
  add_mailbox_commands(app, ctx);
  add_alias_commands(app, ctx);
}

}  // namespace wsmtp::ctl
