"""A throwaway Dovecot whose quota plugin keeps Maildir++ quotas (quota =
maildir), for checking that WSMTP and Dovecot share <Maildir>/maildirsize:
what one writes there the other reads. Built on deliver_dovecot.Dovecot (same
ports, directories and stop by PID); the users come from a passwd-file whose
userdb extra field quota_rule carries each user's limits, which a test sets to
the database's. Also reads maildirsize files and Dovecot's own view of them
(`doveadm quota get` / `quota recalc`).
"""
import os
import subprocess

from deliver_dovecot import PASSWORD, Dovecot


class QuotaDovecot(Dovecot):
    def __init__(self, root, mail_root, quotas, mail_user="nobody"):
        """quotas: {user: (bytes or None, messages or None)}; only these users exist."""
        self.quotas = dict(quotas)
        super().__init__(root, mail_root, mail_user=mail_user, users=list(self.quotas))

    def _rule(self, user):
        limit_bytes, limit_messages = self.quotas[user]
        parts = ["*"]
        if limit_bytes:
            parts.append(f"storage={limit_bytes}B")
        if limit_messages:
            parts.append(f"messages={limit_messages}")
        return ":".join(parts)

    def _user_databases(self, users, mail_root):
        # Called by Dovecot.__init__ while it writes the configuration: the
        # passwd-file gets the quota rules, the configuration the quota plugin.
        path = os.path.join(self.root, "etc", "users")
        with open(path, "w") as f:
            for u in users:
                f.write(f"{u}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{mail_root}/{u}::"
                        f"userdb_quota_rule={self._rule(u)}\n")
        return (f"passdb {{\n  driver = passwd-file\n  args = {path}\n}}\n"
                f"userdb {{\n  driver = passwd-file\n  args = {path}\n}}\n"
                "mail_plugins = $mail_plugins quota\n"
                "plugin {\n  quota = maildir:User quota\n}\n")

    def doveadm(self, *args):
        r = subprocess.run(["doveadm", "-c", self.config, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    def quota(self, user):
        """Dovecot's figures: {"STORAGE": (used KiB, limit KiB or None), "MESSAGE": (used, limit or None)}."""
        out = {}
        for line in self.doveadm("-f", "tab", "quota", "get", "-u", user).splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) >= 4:
                out[fields[1]] = (int(fields[2]), None if fields[3] == "-" else int(fields[3]))
        return out

    def recalc(self, user):
        """Dovecot recounts the Maildir and rewrites maildirsize from its own scan."""
        self.doveadm("quota", "recalc", "-u", user)


def read_maildirsize(maildir):
    """(quota line, [(bytes, count) per change line]) of <maildir>/maildirsize, or None."""
    path = os.path.join(maildir, "maildirsize")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", f"maildirsize does not end with a newline: {lines!r}"
    changes = [tuple(int(n) for n in line.split()) for line in lines[1:-1]]
    return lines[0], changes


def totals(changes):
    return sum(c[0] for c in changes), sum(c[1] for c in changes)
