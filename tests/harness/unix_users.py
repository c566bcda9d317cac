"""The shipped systemd units' users, run for real in tests.

unit_settings() reads a daemon's User=, Group=, SupplementaryGroups=,
LoadCredential=, Environment= and capabilities from deploy/systemd/, so a test
runs exactly what is shipped. Namespace makes those users (and any others a
test needs) exist only inside private mount namespaces that this harness starts
processes in: a copy of /etc/passwd and /etc/group is bind-mounted over the
real ones there, and the machine's own user database is never touched.
NamespacedPg is a throwaway PostgreSQL whose peer authentication sees them.
"""
import os
import re
import subprocess

from pgtmp import PgServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

UNITS = {"wsmtp": "wsmtp.service", "wroute": "wroute.service", "wdeliver": "wdeliver.service",
         "wreaper": "wreaper.service"}
# The login role each daemon's user gets on a single host (deploy/README.md, "Credentials").
GROUP_ROLE = {"wsmtp": "wsmtp_listener", "wroute": "wsmtp_router", "wdeliver": "wsmtp_deliver",
              "wreaper": "wsmtp_reaper"}


def unit_settings(daemon):
    with open(os.path.join(ROOT, "deploy", "systemd", UNITS[daemon])) as f:
        text = f.read()

    def one(key):
        found = re.findall(rf"^{key}=(.*)$", text, re.M)
        assert len(found) == 1, f"{UNITS[daemon]}: expected one {key}=, found {found}"
        return found[0].strip()

    def caps(key):
        return [c for line in re.findall(rf"^{key}=(.*)$", text, re.M) for c in line.split()]

    cred = re.findall(r"^LoadCredential=([^:\n]+):(\S+)$", text, re.M)
    supp = re.findall(r"^SupplementaryGroups=(.*)$", text, re.M)
    return {"user": one("User"), "group": one("Group"), "supplementary": supp[0].split() if supp else [],
            "credentials": cred, "environment": re.findall(r"^Environment=(.*)$", text, re.M),
            "ambient": caps("AmbientCapabilities"), "bounding": caps("CapabilityBoundingSet")}


class Namespace:
    """Users and groups that exist only inside the mount namespaces this harness
    starts processes in."""

    def __init__(self, root, users, groups):
        self.passwd = os.path.join(root, "passwd")
        self.group = os.path.join(root, "group")
        with open("/etc/passwd") as f:
            passwd = f.read().splitlines()
        with open("/etc/group") as f:
            group = f.read().splitlines()
        used_uids = {int(l.split(":")[2]) for l in passwd if l.count(":") >= 6}
        used_gids = {int(l.split(":")[2]) for l in group if l.count(":") >= 3}
        self.uid, self.gid = {}, {}
        for line in passwd:
            name, _, uid, gid = line.split(":")[:4]
            self.uid[name] = int(uid)
        for line in group:
            name, _, gid = line.split(":")[:3]
            self.gid[name] = int(gid)
        free = (n for n in range(61000, 65000) if n not in used_uids and n not in used_gids)
        members = {}
        for name, wanted in groups.items():
            members[name] = wanted
            if name not in self.gid:
                self.gid[name] = next(free)
        for name, primary in users.items():
            if name not in self.uid:
                self.uid[name] = next(free)
                passwd.append(f"{name}:x:{self.uid[name]}:{self.gid[primary]}:{name}:/nonexistent:/usr/sbin/nologin")
        out_groups = []
        for line in group:
            fields = line.split(":")
            if fields[0] in members:
                have = [m for m in fields[3].split(",") if m]
                fields[3] = ",".join(have + [m for m in members[fields[0]] if m not in have])
                members.pop(fields[0])
            out_groups.append(":".join(fields))
        for name, users_in in members.items():
            out_groups.append(f"{name}:x:{self.gid[name]}:{','.join(users_in)}")
        with open(self.passwd, "w") as f:
            f.write("\n".join(passwd) + "\n")
        with open(self.group, "w") as f:
            f.write("\n".join(out_groups) + "\n")
        os.chmod(self.passwd, 0o644)
        os.chmod(self.group, 0o644)

    def wrap(self, cmd):
        """cmd, run in a new private mount namespace that sees these users."""
        script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
                self.passwd, self.group, *cmd]

    def as_user(self, user, group, cmd, ambient=()):
        """cmd as user (its groups from the namespace's group file) holding only
        the ambient capabilities given (names as in a unit: CAP_SETUID), as
        systemd starts a unit with User= and AmbientCapabilities=."""
        names = "".join(f",+{c.lower().removeprefix('cap_')}" for c in ambient)
        return self.wrap(["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--no-new-privs",
                          f"--inh-caps=-all{names}", f"--ambient-caps=-all{names}", f"--bounding-set=-all{names}",
                          "--", *cmd])

    def unit_command(self, settings, cmd):
        """cmd as the unit whose unit_settings() are given would run it."""
        return self.as_user(settings["user"], settings["group"], cmd, settings["ambient"])


class NamespacedPg(PgServer):
    """The test's PostgreSQL, whose peer authentication looks users up in the namespace."""

    def __init__(self, ns):
        self.ns = ns
        super().__init__()

    def _run(self, tool, *args, check=True):
        cmd = ["runuser", "-u", "nobody", "--", os.path.join(self.bindir, tool), *args]
        return subprocess.run(self.ns.wrap(cmd), check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, cwd=self.tmp)


