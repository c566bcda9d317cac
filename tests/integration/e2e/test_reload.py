#!/usr/bin/env python3
"""SIGHUP on the worker daemons (systemctl reload): a good configuration makes
wroute, wdeliver and wreaper restart in place with it (same PID), a bad one is
refused with a log line and the daemon keeps working with what it had.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402


def send(p, subject):
    with p.smtp() as s:
        s.sendmail("s@client.example", [f"ann@{p.domain}"], f"Subject: {subject}\r\n\r\nbody\r\n")


def main():
    with Pipeline() as p:
        p.add_domain()
        p.add_mailbox("ann")
        p.start_all()
        procs = {n: p.procs[n][-1] for n in ("wroute", "wdeliver", "wreaper")}
        send(p, "before")
        wait_until(lambda: len(p.maildir_files("ann")) == 1, 30, what="first delivery")

        good = open(p.config).read()
        # A good file with a change: the daemons re-execute themselves with it.
        with open(p.config, "w") as f:
            f.write(good.replace("[reaper]\n", "[reaper]\nbatch_size = 500\n"))
        for name, proc in procs.items():
            proc.send_signal(signal.SIGHUP)
        for name, proc in procs.items():
            wait_until(lambda: "configuration valid; restarting with it" in p.log(name), 30, what=f"{name} reload")
            assert proc.poll() is None, f"{name} died on reload"
        send(p, "after-reload")
        wait_until(lambda: len(p.maildir_files("ann")) == 2, 30, what="delivery after the reload")

        # A bad file: refused, logged, and the daemons carry on.
        with open(p.config, "w") as f:
            f.write(good.replace("[queue]\n", "[queue]\nmax_expired_claims = many\n"))
        for name, proc in procs.items():
            proc.send_signal(signal.SIGHUP)
        for name, proc in procs.items():
            wait_until(lambda: "reload refused" in p.log(name), 30, what=f"{name} refusing a bad file")
        assert "[queue] max_expired_claims" in p.log("wroute").split("reload refused")[-1].splitlines()[0]
        time.sleep(1)
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} died on a bad reload"
        send(p, "after-bad-reload")
        wait_until(lambda: len(p.maildir_files("ann")) == 3, 30, what="delivery after a refused reload")
        with open(p.config, "w") as f:
            f.write(good)
        print("reload: good file re-executed in place, bad file refused, mail kept flowing")


if __name__ == "__main__":
    main()
