// wsmtpctl mailing-list | catchall | forward | autoreply | relay — the router's
// and the deliverer's rule tables. ("list" alone lists queued messages.)
#include <iostream>

#include <fmt/format.h>

#include "address.h"
#include "context.h"
#include "json_output.h"
#include "pg/directory.h"
#include "db/relay_admin.h"
#include "db/routing_admin.h"

namespace wsmtp::ctl {
namespace {

std::string key_of(const std::string& text) { return require_address(text).lookup_key(); }

std::string local_domain_of(pqxx::transaction_base& tx, const std::string& key) {
  auto domain = key.substr(key.rfind('@') + 1);
  require_local_domain(tx, domain);
  return domain;
}

struct Args {
  std::string address, owner, bounce, policy = "members", list_id, description, target, domain;
  std::string subject, body, starts, ends, period = "7d", tls = "opportunistic", eightbit = "convert", host;
  std::vector<std::string> members;
  int port = 25, weight = 1;
  bool keep_copy = false;
};

// Registers `name` under parent with its options, and makes `run` the action.
template <class Setup, class Run>
void sub(CLI::App* parent, Context& ctx, const char* name, const char* help, Setup setup, Run run) {
  auto* cmd = parent->add_subcommand(name, help);
  setup(cmd);
  cmd->callback([&ctx, run] { ctx.action = [&ctx, run] { return run(ctx); }; });
}

template <class Fn>
int write_tx(Context& ctx, Fn fn) {
  pqxx::work tx(ctx.db());
  fn(tx);
  tx.commit();
  return kExitOk;
}

void add_mailing_list(CLI::App& app, Context& context, const std::shared_ptr<Args>& a) {
  auto* cmd = app.add_subcommand("mailing-list", "mailing lists and their members");
  cmd->require_subcommand(1);
  sub(
      cmd, context, "add", "create a list",
      [a](CLI::App* c) {
        c->add_option("address", a->address, "list address")->required();
        c->add_option("--owner", a->owner, "owner address")->required();
        c->add_option("--bounce", a->bounce, "bounce address (default: the owner)");
        c->add_option("--policy", a->policy, "who may post: anyone, members, moderated");
        c->add_option("--list-id", a->list_id, "RFC 2919 list id (default: local.domain)");
        c->add_option("--description", a->description, "List-Id phrase");
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          common::pg::ListSpec spec;
          spec.address = key_of(a->address);
          local_domain_of(tx, spec.address);
          spec.owner = key_of(a->owner);
          spec.bounce_address = a->bounce.empty() ? "" : key_of(a->bounce);
          auto policy = common::pg::parse_posting_policy(a->policy);
          if (!policy) throw UsageError(fmt::format("--policy {}: expected anyone, members or moderated", a->policy));
          spec.policy = *policy;
          spec.list_id = a->list_id;
          spec.description = a->description;
          if (!common::pg::add_list(tx, spec)) throw CommandError(fmt::format("list '{}' exists", spec.address));
          std::cout << "added list " << spec.address << "\n";
        });
      });
  sub(
      cmd, context, "remove", "remove a list and its members",
      [a](CLI::App* c) { c->add_option("address", a->address, "list address")->required(); },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_list(tx, key_of(a->address)))
            throw CommandError(fmt::format("no list '{}'", a->address));
          std::cout << "removed list " << key_of(a->address) << "\n";
        });
      });
  sub(
      cmd, context, "list", "list mailing lists",
      [a](CLI::App* c) { c->add_option("--domain", a->domain, "only this domain"); },
      [a](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        auto lists = common::pg::list_lists(tx, common::to_lower_ascii(a->domain));
        if (ctx.json) {
          Json out = Json::array();
          for (const auto& l : lists)
            out.push_back({{"address", l.address},
                           {"owner", l.owner},
                           {"policy", common::pg::posting_policy_name(l.policy)},
                           {"list_id", l.list_id}});
          print_json(out);
          return kExitOk;
        }
        for (const auto& l : lists)
          std::cout << fmt::format("{} owner={} policy={} id={}\n", l.address, l.owner,
                                   common::pg::posting_policy_name(l.policy), l.list_id);
        return kExitOk;
      });
  sub(
      cmd, context, "add-member", "add members to a list",
      [a](CLI::App* c) {
        c->add_option("address", a->address, "list address")->required();
        c->add_option("members", a->members, "member addresses")->required();
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          for (const auto& m : a->members)
            std::cout << (common::pg::add_list_member(tx, key_of(a->address), key_of(m)) ? "added "
                                                                                         : "already a member: ")
                      << key_of(m) << "\n";
        });
      });
  sub(
      cmd, context, "remove-member", "remove members from a list",
      [a](CLI::App* c) {
        c->add_option("address", a->address, "list address")->required();
        c->add_option("members", a->members, "member addresses")->required();
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          for (const auto& m : a->members)
            if (!common::pg::remove_list_member(tx, key_of(a->address), key_of(m)))
              throw CommandError(fmt::format("'{}' is not a member of '{}'", m, a->address));
          std::cout << fmt::format("removed {} member(s)\n", a->members.size());
        });
      });
  sub(
      cmd, context, "members", "list the members of a list",
      [a](CLI::App* c) { c->add_option("address", a->address, "list address")->required(); },
      [a](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        auto members = common::pg::list_list_members(tx, key_of(a->address));
        if (ctx.json) {
          print_json(members);
          return kExitOk;
        }
        for (const auto& m : members) std::cout << m << "\n";
        return kExitOk;
      });
}

void add_catchall_and_forward(CLI::App& app, Context& context, const std::shared_ptr<Args>& a) {
  auto* ca = app.add_subcommand("catchall", "per-domain catch-all for otherwise unknown addresses");
  ca->require_subcommand(1);
  sub(
      ca, context, "set", "send unknown addresses of a domain to target",
      [a](CLI::App* c) {
        c->add_option("domain", a->domain, "local domain")->required();
        c->add_option("target", a->target, "target address")->required();
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          auto domain = common::to_lower_ascii(a->domain);
          if (!common::pg::is_local_domain(tx, domain)) throw CommandError(fmt::format("no local domain '{}'", domain));
          common::pg::set_catchall(tx, domain, key_of(a->target));
          std::cout << fmt::format("catch-all of {} -> {}\n", domain, key_of(a->target));
        });
      });
  sub(
      ca, context, "remove", "remove a domain's catch-all",
      [a](CLI::App* c) { c->add_option("domain", a->domain, "local domain")->required(); },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_catchall(tx, common::to_lower_ascii(a->domain)))
            throw CommandError(fmt::format("domain '{}' has no catch-all", a->domain));
          std::cout << "removed catch-all of " << a->domain << "\n";
        });
      });
  sub(
      ca, context, "list", "list catch-alls", [](CLI::App*) {},
      [](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        auto catchalls = common::pg::list_catchalls(tx);
        if (ctx.json) {
          Json out = Json::array();
          for (const auto& c : catchalls) out.push_back({{"domain", c.domain}, {"target", c.target}});
          print_json(out);
          return kExitOk;
        }
        for (const auto& c : catchalls) std::cout << c.domain << " -> " << c.target << "\n";
        return kExitOk;
      });

  auto* fw = app.add_subcommand("forward", "forwarding of a mailbox to other addresses");
  fw->require_subcommand(1);
  sub(
      fw, context, "add", "forward a mailbox's mail to target",
      [a](CLI::App* c) {
        c->add_option("mailbox", a->address, "mailbox address")->required();
        c->add_option("target", a->target, "target address")->required();
        c->add_flag("--keep-copy", a->keep_copy, "also keep a copy in the mailbox");
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::find_mailbox(tx, key_of(a->address)))
            throw CommandError(fmt::format("no mailbox '{}'", a->address));
          common::pg::add_forward(tx, key_of(a->address), key_of(a->target));
          common::pg::set_forward_keep_copy(tx, key_of(a->address), a->keep_copy);
          std::cout << fmt::format("{} -> {}{}\n", key_of(a->address), key_of(a->target),
                                   a->keep_copy ? " (keeping a copy)" : "");
        });
      });
  sub(
      fw, context, "remove", "stop forwarding to target",
      [a](CLI::App* c) {
        c->add_option("mailbox", a->address, "mailbox address")->required();
        c->add_option("target", a->target, "target address")->required();
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_forward(tx, key_of(a->address), key_of(a->target)))
            throw CommandError(fmt::format("'{}' is not forwarded to '{}'", a->address, a->target));
          std::cout << "removed forward\n";
        });
      });
  sub(
      fw, context, "list", "list forwards",
      [a](CLI::App* c) { c->add_option("--domain", a->domain, "only this domain"); },
      [a](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        auto forwards = common::pg::list_forwards(tx, common::to_lower_ascii(a->domain));
        if (ctx.json) {
          Json out = Json::array();
          for (const auto& f : forwards)
            out.push_back({{"address", f.address}, {"target", f.target}, {"keep_copy", f.keep_copy}});
          print_json(out);
          return kExitOk;
        }
        for (const auto& f : forwards)
          std::cout << fmt::format("{} -> {}{}\n", f.address, f.target, f.keep_copy ? " (keep copy)" : "");
        return kExitOk;
      });
}

void add_autoreply(CLI::App& app, Context& context, const std::shared_ptr<Args>& a) {
  auto* cmd = app.add_subcommand("autoreply", "vacation auto-replies (RFC 3834)");
  cmd->require_subcommand(1);
  sub(
      cmd, context, "set", "set a mailbox's auto-reply (text from --body or stdin)",
      [a](CLI::App* c) {
        c->add_option("mailbox", a->address, "mailbox address")->required();
        c->add_option("--subject", a->subject, "reply subject")->required();
        c->add_option("--body", a->body, "reply text; without it, read from stdin");
        c->add_option("--from", a->starts, "start (timestamp, e.g. 2026-12-20)");
        c->add_option("--until", a->ends, "end (timestamp)");
        c->add_option("--period", a->period, "at most one reply per sender per period (default 7d)");
      },
      [a](Context& ctx) {
        common::pg::AutoReplySpec spec;
        spec.address = key_of(a->address);
        spec.subject = a->subject;
        spec.body = a->body;
        if (spec.body.empty()) {
          std::string line;
          while (std::getline(std::cin, line)) spec.body += line + "\n";
        }
        if (spec.body.empty()) throw CommandError("empty auto-reply text (give --body or text on stdin)");
        auto period = common::parse_duration(a->period);
        if (!period) throw UsageError(fmt::format("--period {}: expected a duration like 1d or 7d", a->period));
        spec.period_seconds = period->count();
        spec.starts_at = a->starts;
        spec.ends_at = a->ends;
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::find_mailbox(tx, spec.address))
            throw CommandError(fmt::format("no mailbox '{}'", spec.address));
          common::pg::set_autoreply(tx, spec);
          std::cout << "auto-reply set for " << spec.address << "\n";
        });
      });
  sub(
      cmd, context, "remove", "remove a mailbox's auto-reply",
      [a](CLI::App* c) { c->add_option("mailbox", a->address, "mailbox address")->required(); },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_autoreply(tx, key_of(a->address)))
            throw CommandError(fmt::format("'{}' has no auto-reply", a->address));
          std::cout << "removed auto-reply of " << key_of(a->address) << "\n";
        });
      });
  sub(
      cmd, context, "list", "list auto-replies",
      [a](CLI::App* c) { c->add_option("--domain", a->domain, "only this domain"); },
      [a](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        auto replies = common::pg::list_autoreplies(tx, common::to_lower_ascii(a->domain));
        if (ctx.json) {
          Json out = Json::array();
          for (const auto& r : replies) {
            Json j = {{"address", r.address},
                      {"starts_at", r.starts_at},
                      {"ends_at", r.ends_at},
                      {"period_seconds", r.period_seconds}};
            put_bytes(j, "subject", r.subject);
            out.push_back(std::move(j));
          }
          print_json(out);
          return kExitOk;
        }
        for (const auto& r : replies)
          std::cout << fmt::format("{} \"{}\" from={} until={} period={}s\n", r.address, r.subject,
                                   r.starts_at.empty() ? "-" : r.starts_at, r.ends_at.empty() ? "-" : r.ends_at,
                                   r.period_seconds);
        return kExitOk;
      });
}

void add_relay(CLI::App& app, Context& context, const std::shared_ptr<Args>& a) {
  auto* cmd = app.add_subcommand("relay", "outbound relay pools and their relays");
  cmd->require_subcommand(1);
  sub(
      cmd, context, "pool-set", "create or change a pool",
      [a](CLI::App* c) {
        c->add_option("pool", a->target, "pool name")->required();
        c->add_option("--tls", a->tls, "none, opportunistic or required")
            ->check(CLI::IsMember({"none", "opportunistic", "required"}));
        c->add_option("--8bit", a->eightbit,
                      "for relays without 8BITMIME: convert (to quoted-printable), bounce or send")
            ->check(CLI::IsMember({"convert", "bounce", "send"}));
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          common::pg::set_relay_pool(tx, {a->target, a->tls, a->eightbit});
          std::cout << fmt::format("pool {} tls={} 8bit={}\n", a->target, a->tls, a->eightbit);
        });
      });
  sub(
      cmd, context, "pool-remove", "remove a pool and its relays",
      [a](CLI::App* c) { c->add_option("pool", a->target, "pool name")->required(); },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_relay_pool(tx, a->target)) throw CommandError(fmt::format("no pool '{}'", a->target));
          std::cout << "removed pool " << a->target << "\n";
        });
      });
  sub(
      cmd, context, "add", "add a relay to a pool (or change its weight)",
      [a](CLI::App* c) {
        c->add_option("pool", a->target, "pool name")->required();
        c->add_option("host", a->host, "relay host name or address")->required();
        c->add_option("--port", a->port, "port (default 25)")->check(CLI::Range(1, 65535));
        c->add_option("--weight", a->weight, "share of connections (default 1; 0 = unused)")
            ->check(CLI::Range(0, 1000));
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::set_relay(tx, a->target, a->host, a->port, a->weight))
            throw CommandError(
                fmt::format("no pool '{}'; create it with 'wsmtpctl relay pool-set {}'", a->target, a->target));
          std::cout << fmt::format("relay {}:{} in {} weight {}\n", a->host, a->port, a->target, a->weight);
        });
      });
  sub(
      cmd, context, "remove", "remove a relay from a pool",
      [a](CLI::App* c) {
        c->add_option("pool", a->target, "pool name")->required();
        c->add_option("host", a->host, "relay host")->required();
        c->add_option("--port", a->port, "port (default 25)")->check(CLI::Range(1, 65535));
      },
      [a](Context& ctx) {
        return write_tx(ctx, [&](auto& tx) {
          if (!common::pg::remove_relay(tx, a->target, a->host, a->port))
            throw CommandError(fmt::format("no relay {}:{} in pool '{}'", a->host, a->port, a->target));
          std::cout << "removed relay\n";
        });
      });
  sub(
      cmd, context, "list", "list pools and relays (with down marks)", [](CLI::App*) {},
      [](Context& ctx) {
        pqxx::read_transaction tx(ctx.db());
        if (ctx.json) {
          Json out = Json::array();
          for (const auto& p : common::pg::list_relay_pools(tx)) {
            Json relays = Json::array();
            for (const auto& r : common::pg::list_relays(tx, p.name))
              relays.push_back({{"host", r.host},
                                {"port", r.port},
                                {"weight", r.weight},
                                {"down_until", r.down_until},
                                {"last_error", r.last_error}});
            out.push_back(
                {{"pool", p.name}, {"tls", p.tls_policy}, {"eightbit", p.eightbit_policy}, {"relays", relays}});
          }
          print_json(out);
          return kExitOk;
        }
        for (const auto& p : common::pg::list_relay_pools(tx)) {
          std::cout << fmt::format("pool {} tls={} 8bit={}\n", p.name, p.tls_policy, p.eightbit_policy);
          for (const auto& r : common::pg::list_relays(tx, p.name))
            std::cout << fmt::format("  {}:{} weight={}{}\n", r.host, r.port, r.weight,
                                     r.down_until.empty() ? "" : " down until " + r.down_until + ": " + r.last_error);
        }
        return kExitOk;
      });
}

}  // namespace

void add_routing_commands(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<Args>();  // co-owned by every callback below; one command runs
  add_mailing_list(app, ctx, args);
  add_catchall_and_forward(app, ctx, args);
  add_autoreply(app, ctx, args);
  add_relay(app, ctx, args);
}

}  // namespace wsmtp::ctl
