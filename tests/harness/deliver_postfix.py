"""A throwaway Postfix for benchmarks: its own config, queue and data
directories under `root`, smtpd on a loopback port, every recipient of the
domain delivered by virtual(8) into <root>/mail/<user>/Maildir/ (Postfix's own
Maildir delivery). Started with `postfix -c DIR start`, stopped with
`postfix -c DIR stop` (its master is the only process we started).
"""
import os
import re
import shutil
import subprocess

from pgtmp import free_port


class Postfix:
    def __init__(self, root, domain, users, defer_delivery=False, extra=""):
        """extra: more main.cf lines (e.g. smtpd TLS settings)."""
        self.root = os.path.join(root, "postfix")
        self.etc = os.path.join(self.root, "etc")
        self.mail = os.path.join(self.root, "mail")
        for d in (self.etc, self.mail, os.path.join(self.root, "data"), os.path.join(self.root, "queue")):
            os.makedirs(d, exist_ok=True)
        os.chmod(root, 0o755)
        os.chmod(self.root, 0o755)
        shutil.chown(self.mail, "nobody", "nogroup")
        shutil.chown(os.path.join(self.root, "data"), "postfix")
        self.port = free_port()
        self.domain = domain
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            for u in users:
                f.write(f"{u}@{domain} {u}/Maildir/\n")
        with open("/etc/postfix/master.cf") as f:
            master = f.read()
        # No chroot (the queue is a scratch directory), smtpd on our port.
        master = re.sub(r"(?m)^(\S+\s+\S+\s+\S+\s+\S+\s+)y(\s)", r"\1n\2", master)
        master = re.sub(r"(?m)^smtp(\s+)inet", f"127.0.0.1:{self.port} inet", master)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.root}/queue
data_directory = {self.root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench-postfix.local
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.etc}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 1
maillog_file_prefixes = {self.root}
maillog_file = {self.root}/maillog
smtpd_banner = $myhostname ESMTP
default_process_limit = 100
{"defer_transports = virtual" if defer_delivery else ""}
{extra}
""")
        self.run("start")

    def run(self, *args):
        return subprocess.run(["postfix", "-c", self.etc, *args], check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def flush(self):
        """Delivers what defer_transports held back (postqueue -f)."""
        subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True)

    def undefer(self):
        subprocess.run(["postconf", "-c", self.etc, "-e", "defer_transports ="], check=True)
        self.run("reload")

    def maildir_count(self):
        n = 0
        for user in os.listdir(self.mail):
            d = os.path.join(self.mail, user, "Maildir", "new")
            if os.path.isdir(d):
                n += len(os.listdir(d))
        return n

    def maildir_files(self):
        """Every delivered message file (new/ and cur/ of every mailbox)."""
        out = []
        for user in sorted(os.listdir(self.mail)):
            for sub in ("new", "cur"):
                d = os.path.join(self.mail, user, "Maildir", sub)
                if os.path.isdir(d):
                    out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
