#!/usr/bin/env python3
"""What quotas and the 8-bit downgrade cost wdeliver, each as a ratio against
the same deliverer without the feature, measured in the same run (1 worker,
PostgreSQL with fsync on, messages already routed when the worker starts):

- Maildir: 20 mailboxes, each already holding `prefill` messages (the usage
  scan reads them all), without quotas and then with a quota on every mailbox
  large enough to accept everything.
- Relay: 8-bit messages (MIME, text/plain 8bit) to smtp-sink announcing
  8BITMIME (sent as they are) and to smtp-sink -8 (converted to
  quoted-printable: a scan pass and an encode pass over each body).

Three alternating rounds; the median ratio is reported. Usage:
deliver_features.py [messages] [prefill] (default 500 per measurement and
1000; 4 KiB messages). Needs WSMTP_BIN. Bounded: a few minutes at most.
"""
import os
import statistics
import sys

from deliver_bench_lib import drain_rate, durable_pipeline, send_parallel, set_section, sql

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from deliver_relays import SmtpSink  # noqa: E402

USERS = [f"q{i:02d}" for i in range(20)]
ROUNDS = 3


def eightbit_body(i):
    head = (f"Subject: feat-{i:06d}\r\nMessage-ID: <feat-{i:06d}@bench>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    line = "Grüße aus Köln — ½ € ✓ naïve café 0123456789 abcdef\r\n"
    return (head + line * (4096 // len(line.encode()))).encode()


def send(port, first, count, rcpt_of, sessions=8):
    send_parallel(port, count, sessions, rcpt_of, first=first, body=eightbit_body, mail_options=["BODY=8BITMIME"])


def drain(p, first, n, rcpt_of):
    return drain_rate(p, n, lambda: send(p.port, first, n, rcpt_of))


def prefill(p, count):
    for u in USERS:
        d = os.path.join(p.maildir(u), "cur")
        os.makedirs(os.path.join(p.maildir(u), "new"), exist_ok=True)
        os.makedirs(os.path.join(p.maildir(u), "tmp"), exist_ok=True)
        os.makedirs(d, exist_ok=True)
        for k in range(count):
            with open(os.path.join(d, f"1700000000.old{k}.bench:2,S"), "wb") as f:
                f.write(b"Subject: old\n\n" + b"x" * 2000 + b"\n")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    fill = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    p = durable_pipeline(lease_time="60s",
                         listener_extra="trusted_networks = 127.0.0.1/32\nmax_connection_rate = 100000\n")
    sinks = []
    try:
        set_section(p, "deliver", transports="maildir, relay", batch_size="50")
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        prefill(p, fill)
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        local = lambda i: f"{USERS[i % len(USERS)]}@{p.domain}"  # noqa: E731
        remote = lambda i: f"r{i % 20}@far.example"  # noqa: E731
        first = 0
        # Alternating rounds: the machine's load drifts, so each ratio compares
        # two measurements taken back to back, and the median is reported.
        quota_ratios = []
        for _ in range(ROUNDS):
            rates = []
            for setting in ("NULL", "1099511627776"):
                sql(p, f"UPDATE mailboxes SET quota_bytes = {setting}")
                rates.append(drain(p, first, n, local))
                first += n
            quota_ratios.append(rates[1] / rates[0])
            print(f"maildir ({fill} messages per mailbox already): no quota {rates[0]:6.0f}/s, "
                  f"with quota {rates[1]:6.0f}/s, ratio {quota_ratios[-1]:4.2f}", flush=True)
        sinks = [SmtpSink(p.root, "eight"), SmtpSink(p.root, "seven", "-8")]
        convert_ratios = []
        for _ in range(ROUNDS):
            rates = []
            for sink in sinks:
                sql(p, "DELETE FROM relay_pools")
                sql(p, "INSERT INTO relay_pools (name, max_messages_per_connection, eightbit_policy) "
                       "VALUES ('default', 1000, 'convert')")
                sql(p, f"INSERT INTO relays (pool, host, port) VALUES ('default', '127.0.0.1', {sink.backend_port})")
                rates.append(drain(p, first, n, remote))
                first += n
            convert_ratios.append(rates[1] / rates[0])
            print(f"relay, 8-bit mail: to an 8BITMIME relay {rates[0]:6.0f}/s, converted for a 7-bit relay "
                  f"{rates[1]:6.0f}/s, ratio {convert_ratios[-1]:4.2f}", flush=True)
        print(f"median ratios over {ROUNDS} rounds: quota/no quota {statistics.median(quota_ratios):4.2f}, "
              f"converted/as is {statistics.median(convert_ratios):4.2f}")
    finally:
        for sink in sinks:
            sink.stop()
        p.close()


if __name__ == "__main__":
    main()
