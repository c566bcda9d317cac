"""mbox delivery to a /var/mail-style spool directory by a deliverer that is not
root, with exactly wdeliver.service's user, groups and capabilities (issue 15:
"mbox delivery to /var/mail fails under the shipped unit").

The spool directory is Debian's /var/mail: root:mail, 2775. The deliverer runs
as the unit's User=/Group=/SupplementaryGroups= and holds only its
AmbientCapabilities= (read from deploy/systemd/wdeliver.service); the mailbox
owners exist only in the test's mount namespaces (harness/unix_users.py).

Each spool must be created as its owner (user:mail, 0600, as Postfix's local
leaves it), every later message must still be appended (the deliverer never
locks itself out), no lock file may be left behind, and the owner's mail
client must read every message.
"""
import mailbox
import os
import shutil
import smtplib
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "harness"))
from deliver_harness import Pipeline, add_mbox_mailbox, set_section, unquote_mboxrd, wait_until  # noqa: E402
from unix_users import Namespace, unit_settings  # noqa: E402

if os.geteuid() != 0:
    pytest.skip("needs root: it runs the deliverer under the unit's user", allow_module_level=True)
for tool in ("unshare", "setpriv", "mount"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed", allow_module_level=True)
if subprocess.run(["unshare", "--mount", "--propagation", "private", "true"]).returncode != 0:
    pytest.skip("mount namespaces are not permitted here (unshare --mount failed)", allow_module_level=True)

OWNERS = ("alice", "bob")


@pytest.fixture(scope="module")
def setup():
    unit = unit_settings("wdeliver")
    with Pipeline(lease_time="10s") as p:
        os.chmod(p.root, 0o755)
        groups = {unit["group"]: []}
        for g in unit["supplementary"]:
            groups.setdefault(g, []).append(unit["user"])
        users = {unit["user"]: unit["group"]}
        users.update({o: "users" for o in OWNERS})
        groups.setdefault("users", [])
        ns = Namespace(p.root, users, groups)
        spool_dir = os.path.join(p.root, "var-mail")
        os.makedirs(spool_dir)
        os.chown(spool_dir, 0, ns.gid["mail"])
        os.chmod(spool_dir, 0o2775)
        set_section(p, "deliver", transports="maildir, mbox", retry_base="1s")
        os.chmod(p.config, 0o644)
        p.add_domain()
        spools = {o: os.path.join(spool_dir, o) for o in OWNERS}
        for o in OWNERS:
            add_mbox_mailbox(p, o, spools[o])
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        log = open(os.path.join(p.log_dir, "wdeliver.log"), "a")
        cmd = ns.unit_command(unit, [os.path.join(p.bindir, "deliver/wdeliver"), "--config", p.config])
        deliverer = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True, cwd="/")
        p.procs.setdefault("wdeliver", []).append(deliverer)
        log.close()
        # The wrapper (unshare, sh, setpriv) execs into the daemon under the same pid.
        wait_until(lambda: os.readlink(f"/proc/{deliverer.pid}/exe").endswith("/wdeliver"), 10,
                   what="wdeliver started")
        yield p, ns, unit, spools, deliverer


def send(p, to, subject, body):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.sendmail("sender@remote.example", [f"{to}@{p.domain}"],
                   f"Subject: {subject}\r\n\r\n{body}\r\n".encode())


def messages(path):
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [(m["Subject"], unquote_mboxrd(m.get_payload())) for m in box]
    finally:
        box.close()


def test_the_deliverer_runs_with_only_the_units_rights(setup):
    p, ns, unit, spools, deliverer = setup
    with open(f"/proc/{deliverer.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    assert status["Uid"].split() == [str(ns.uid[unit["user"]])] * 4
    # CAP_SETUID (7) and CAP_SETGID (6), nothing else, as the unit grants.
    assert unit["ambient"] == ["CAP_SETUID", "CAP_SETGID"]
    assert int(status["CapEff"], 16) == (1 << 7) | (1 << 6)


def test_a_new_spool_is_created_as_its_owner_and_later_mail_is_appended(setup):
    p, ns, unit, spools, deliverer = setup
    for i in range(3):
        send(p, "alice", f"alice {i}", f"From the desk of alice, message {i}")
        # One at a time, so each later message finds the spool the first one made.
        wait_until(lambda: len(messages(spools["alice"])) == i + 1, 30, what=f"alice's message {i}")
    send(p, "bob", "bob 0", "for bob")
    wait_until(lambda: len(messages(spools["bob"])) == 1, 30, what="bob's message")
    for owner, count in (("alice", 3), ("bob", 1)):
        st = os.stat(spools[owner])
        assert (st.st_uid, st.st_gid) == (ns.uid[owner], ns.gid["mail"]), \
            f"{owner}'s spool belongs to {st.st_uid}:{st.st_gid}; log:\n{p.log('wdeliver')[-2000:]}"
        assert st.st_mode & 0o7777 == 0o600
        assert not os.path.exists(spools[owner] + ".lock")
    assert [s for s, _ in messages(spools["alice"])] == ["alice 0", "alice 1", "alice 2"]
    assert "From the desk of alice, message 2" in messages(spools["alice"])[2][1]
    assert "stays the deliverer's" not in p.log("wdeliver")
    assert "written as the deliverer" not in p.log("wdeliver")


def test_the_owner_can_read_its_spool_and_the_deliverer_still_appends_after_the_owner_rewrites_it(setup):
    p, ns, unit, spools, deliverer = setup
    # The owner's MUA reads the spool and rewrites it without the first message
    # (as mutt does on expunge), as the owner.
    script = ("import mailbox,sys; b=mailbox.mbox(sys.argv[1]); b.lock(); keys=list(b.keys()); "
              "b.remove(keys[0]); b.flush(); b.unlock(); b.close()")
    # As Debian's MUAs, it locks and rewrites with group mail (the spool directory is root:mail 2775).
    r = subprocess.run(ns.as_user("alice", "mail", [sys.executable, "-c", script, spools["alice"]]),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    before = len(messages(spools["alice"]))
    send(p, "alice", "after expunge", "still delivered")
    wait_until(lambda: len(messages(spools["alice"])) == before + 1, 30, what="delivery after the owner's rewrite")
    assert messages(spools["alice"])[-1][0] == "after expunge"
    st = os.stat(spools["alice"])
    assert st.st_uid == ns.uid["alice"]
