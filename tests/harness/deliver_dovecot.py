"""A throwaway Dovecot (POP3 and LMTP) for the delivery agent's tests: its own
config, base and state directories under `root`, listening on loopback ports,
with mail_location pointed at the Maildirs wdeliver writes (<mail_root>/<user>/Maildir).
Any user logs in with the password "secret"; mail is accessed as `mail_user`
(Dovecot refuses uid 0). Started with `dovecot -F` and stopped by its PID.
"""
import os
import pwd
import socket
import subprocess
import time

from pgtmp import free_port

PASSWORD = "secret"


class Dovecot:
    def __init__(self, root, mail_root, mail_user="nobody", users=None):
        """users: if given, only these users exist (passwd-file); others are
        unknown (LMTP answers 550 5.1.1 for them). Otherwise anyone exists."""
        self.root = os.path.join(root, "dovecot")
        for sub in ("run", "state", "etc"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        # The mail user must be able to walk down to the Maildirs.
        for d in (root, mail_root, self.root, os.path.join(self.root, "run")):
            os.chmod(d, 0o755)
        user = pwd.getpwnam(mail_user)
        self.uid, self.gid = user.pw_uid, user.pw_gid
        self.pop3_port = free_port()
        self.lmtp_port = free_port()
        self.mail_root = mail_root
        self.log = os.path.join(self.root, "dovecot.log")
        self.config = os.path.join(self.root, "etc", "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
protocols = pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{mail_root}/%n/Maildir
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
pop3_uidl_format = %f
lmtp_save_to_detail_mailbox = no
auth_username_format = %Ln
{self._user_databases(users, mail_root)}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
""")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.config],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log + ".stderr", "a"))
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.pop3_port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start: {self.read_log()}")

    def _user_databases(self, users, mail_root):
        if users is None:
            return (f"passdb {{\n  driver = static\n  args = password={PASSWORD}\n}}\n"
                    f"userdb {{\n  driver = static\n  args = uid={self.uid} gid={self.gid} home={mail_root}/%n\n}}\n")
        path = os.path.join(self.root, "etc", "users")
        with open(path, "w") as f:
            for u in users:
                f.write(f"{u}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{mail_root}/{u}\n")
        return (f"passdb {{\n  driver = passwd-file\n  args = {path}\n}}\n"
                f"userdb {{\n  driver = passwd-file\n  args = {path}\n}}\n")

    def read_log(self):
        out = ""
        for path in (self.log, self.log + ".stderr"):
            if os.path.exists(path):
                with open(path) as f:
                    out += f.read()
        return out

    def hand_over(self, user):
        """Gives the Maildir wdeliver wrote (as root in tests) to the mail user."""
        for dirpath, dirnames, filenames in os.walk(os.path.join(self.mail_root, user)):
            os.chown(dirpath, self.uid, self.gid)
            for n in filenames:
                os.chown(os.path.join(dirpath, n), self.uid, self.gid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
