"""A steady stream of mail from several smtplib clients, for the tests that
break something while mail flows (a shard's server crashing, a failover).

Every client-side outcome is recorded, with the queue id of each 250:
  accepted  - 250 after the final dot: must be delivered exactly once
  refused   - a 4xx/5xx reply: must never be delivered
  in doubt  - the connection died after the final dot, before a reply
Each message's Subject is a unique token, so what arrived can be matched to
what was sent (delivered_copies)."""
import re
import smtplib
import socket
import threading
import time


class Flood:
    def __init__(self, p, rcpts, clients=4, pause=0.0):
        self.p, self.rcpts, self.clients, self.pause = p, list(rcpts), clients, pause
        self.lock = threading.Lock()
        self.accepted, self.refused, self.in_doubt = {}, set(), set()
        self.accepted_at = {}
        self.stop_event = threading.Event()
        self.threads = []

    def start(self):
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60)

    def accepted_since(self, moment):
        with self.lock:
            return {t: qid for t, qid in self.accepted.items() if self.accepted_at[t] >= moment}

    def _client(self, n):
        seq, conn = 0, None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", self.p.port, timeout=30)
                    conn.ehlo(f"flood{n}.example")
                seq += 1
                token = f"flood-{n}-{seq:06d}"
                rcpt = self.rcpts[seq % len(self.rcpts)]
                body = f"Subject: {token}\r\nMessage-ID: <{token}@t>\r\n\r\n{token}\r\n"
                conn.mail(f"sender{n}@clients.example")
                code, _ = conn.rcpt(rcpt)
                if code != 250:
                    conn.rset()
                    time.sleep(0.05)
                    continue
                try:
                    code, reply = conn.data(body)
                except smtplib.SMTPDataError:
                    with self.lock:
                        self.refused.add(token)
                    continue
                except (smtplib.SMTPServerDisconnected, OSError):
                    with self.lock:
                        self.in_doubt.add(token)
                    raise
                with self.lock:
                    if code == 250:
                        m = re.search(rb"queued as (\d+)", reply)
                        self.accepted[token] = int(m.group(1)) if m else None
                        self.accepted_at[token] = time.time()
                    else:
                        self.refused.add(token)
                if self.pause:
                    time.sleep(self.pause)
            except (smtplib.SMTPException, OSError, socket.timeout):
                try:
                    conn and conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.05)
        if conn:
            try:
                conn.quit()
            except Exception:
                pass


def delivered_copies(p, users):
    """(token, user) -> number of copies of the token in the user's Maildir."""
    found = {}
    for u in users:
        for f in p.maildir_files(u):
            with open(f, "rb") as fh:
                m = re.search(rb"Subject: (flood-\d+-\d+)", fh.read())
            if m:
                key = (m.group(1).decode(), u)
                found[key] = found.get(key, 0) + 1
    return found
