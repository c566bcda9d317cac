"""SIGHUP on the worker daemons (systemctl reload): a good configuration makes
wroute, wdeliver and wreaper restart in place with it (same PID), a bad one is
refused with a log line and the daemon keeps working with what it had.
"""
import signal
import time

import pytest
from pipeline import Pipeline, wait_until

# The functions below run in file order on one pipeline: each step's
# configuration file and message count build on the one before.
WORKERS = ("wroute", "wdeliver", "wreaper")


def send(p, subject):
    with p.smtp() as s:
        s.sendmail("s@client.example", [f"ann@{p.domain}"], f"Subject: {subject}\r\n\r\nbody\r\n")


@pytest.fixture(scope="module")
def p():
    with Pipeline() as p:
        p.add_domain()
        p.add_mailbox("ann")
        p.start_all()
        yield p


@pytest.fixture(scope="module")
def procs(p):
    return {n: p.procs[n][-1] for n in WORKERS}


@pytest.fixture(scope="module")
def good(p):
    with open(p.config) as f:
        good = f.read()
    yield good
    with open(p.config, "w") as f:
        f.write(good)


def test_mail_flows_before_any_reload(p, procs, good):
    send(p, "before")
    wait_until(lambda: len(p.maildir_files("ann")) == 1, 30, what="first delivery")


def test_good_file_restarts_each_daemon_in_place(p, procs, good):
    # A good file with a change: the daemons re-execute themselves with it.
    with open(p.config, "w") as f:
        f.write(good.replace("[reaper]\n", "[reaper]\nbatch_size = 500\n"))
    for name, proc in procs.items():
        proc.send_signal(signal.SIGHUP)
    for name, proc in procs.items():
        wait_until(lambda: "configuration valid; restarting with it" in p.log(name), 30, what=f"{name} reload")
        assert proc.poll() is None, f"{name} died on reload"


def test_mail_flows_after_a_reload(p):
    send(p, "after-reload")
    wait_until(lambda: len(p.maildir_files("ann")) == 2, 30, what="delivery after the reload")


def test_bad_file_is_refused_with_the_key_named(p, procs, good):
    # A bad file: refused, logged, and the daemons carry on.
    with open(p.config, "w") as f:
        f.write(good.replace("[queue]\n", "[queue]\nmax_expired_claims = many\n"))
    for name, proc in procs.items():
        proc.send_signal(signal.SIGHUP)
    for name, proc in procs.items():
        wait_until(lambda: "reload refused" in p.log(name), 30, what=f"{name} refusing a bad file")
    assert "[queue] max_expired_claims" in p.log("wroute").split("reload refused")[-1].splitlines()[0]


def test_daemons_survive_a_refused_reload(procs):
    time.sleep(1)
    for name, proc in procs.items():
        assert proc.poll() is None, f"{name} died on a bad reload"


def test_mail_flows_after_a_refused_reload(p):
    send(p, "after-bad-reload")
    wait_until(lambda: len(p.maildir_files("ann")) == 3, 30, what="delivery after a refused reload")
