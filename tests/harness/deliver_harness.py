"""Helpers for the delivery agent's end-to-end tests, on top of pipeline.Pipeline:
rewrite the [deliver] (and [listener]/[router]) settings, put mailboxes on other
transports, talk SQL to the test database, and start several wdeliver workers.
Processes are started and stopped by PID through the Pipeline only.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import Pipeline, wait_until  # noqa: E402,F401


def set_section(p, section, **keys):
    """Replaces the body of [section] in the pipeline's config with keys."""
    with open(p.config) as f:
        text = f.read()
    body = "".join(f"{k} = {v}\n" for k, v in keys.items())
    pattern = re.compile(r"^\[" + re.escape(section) + r"\]\n.*?(?=^\[|\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: f"[{section}]\n{body}\n", text)
    else:
        text += f"\n[{section}]\n{body}"
    with open(p.config, "w") as f:
        f.write(text)


def sql(p, statement):
    return p.pg.psql(statement, "wsmtp")


def add_mbox_mailbox(p, user, spool):
    """A mailbox whose transport is mbox, delivering into the spool file `spool`."""
    p.ctl("mailbox", "add", f"{user}@{p.domain}", "--transport", "mbox", "--mbox", spool)


def start_workers(p, count, *extra):
    return [p.start("wdeliver", *extra) for _ in range(count)]


def queue_counts(p):
    q = p.queue()
    return {k: v["count"] for k, v in q.items()}


def unquote_mboxrd(text):
    """Undoes mboxrd quoting (one '>' off every ^>+From line)."""
    return re.sub(r"(?m)^>(>*From )", r"\1", text)
