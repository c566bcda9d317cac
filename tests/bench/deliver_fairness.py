#!/usr/bin/env python3
"""Issue 16's scenario, timed: does abuse clog delivery?

wsmtp, wroute, wdeliver and wreaper start as configured by default (no
[queue], [router] or [deliver] keys but the Pipeline's database; PostgreSQL
durable, as deployed). wroute and wdeliver are then paused with SIGSTOP (each
daemon's process group: supervisor and workers), as the issue measured: they
are up, connected and idle, so what resuming them measures is the claim
order, not process start-up. With both paused, the queue is loaded from
127.0.0.1 with
  * a flood of 20,000 messages of 4 KiB from flood@flood.test, one SMTP session
    (smtp-source -d) into each of 20 Maildirs;
  * 2,000 messages from bulk@bulk.test to a mailbox over its quota (every copy
    is deferred with 4.2.2 and retried after retry_base, 60 s by default);
  * then one message from alice@example.org (smtplib) to another mailbox.
Then both resume (SIGCONT), and it reports the legitimate message's latency
(resume to its file in new/; the database's done_at), the flood's drain time
(resume to the last flood delivery final), their ratio, and where the
legitimate message stood in each stage's order (route_vtime, routed_at,
delivering_at, final_at, counted from the database) to say which stage held
it back.

Usage: WSMTP_BIN=build deliver_fairness.py [flood] [over_quota] [timeout_s]
(defaults 20000 2000 600). WSMTP_FAIRBENCH_LISTENER: extra [listener] lines
(e.g. a backlog quota high enough for the load: the listener's defaults are
otherwise used; loopback is exempt from the per-client limits).
WSMTP_FAIRBENCH_QUEUE, _ROUTER, _DELIVER: "key=value;..." for those sections
(default: none, every key at its default). WSMTP_FAIRBENCH_LEGIT_FROM=127.0.0.2 sends the legitimate message from another
loopback address, a client of its own (the issue sent all from 127.0.0.1, and
the router's clock per client address then puts it behind the flood). Bounded: it
gives up after timeout_s per phase; everything it starts it stops by PID.
"""
import datetime
import os
import re
import sys
import time

from deliver_bench_lib import HERE, durable_pipeline, set_section, sql

sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import fairness_scenario as fs  # noqa: E402


def rel(r, key, start):
    return f"{r[key] - start:+7.3f} s" if r.get(key) is not None else "   (none)"


def print_ramp_up(p, start, drain):
    """How fast the flood went at first: its deliveries final by 1, 2, 5 and 10 s
    after the resume, and when wdeliver's supervisor added workers (its log)."""
    finals = [float(x) for x in sql(p, "SELECT extract(epoch FROM d.final_at) FROM deliveries d JOIN messages m "
                                       f"ON m.id = d.message_id WHERE m.envelope_from = '{fs.FLOOD_SENDER}'").split()]
    by = ", ".join(f"{sum(1 for t in finals if t < start + s)} by +{s} s" for s in (1, 2, 5, 10))
    print(f"  flood deliveries final: {by} (on average {len(finals) / drain:.0f}/s)")
    added = []
    for line in p.log("wdeliver").splitlines():
        m = re.match(r"(\S+Z) wdeliver\[\d+\] info: worker \d+ started \((\d+) running\)", line)
        if m:
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
            if at.timestamp() > start:
                added.append(f"{m.group(2)} at {at.timestamp() - start:+.2f} s")
    print(f"  wdeliver workers after the resume: {', '.join(added) or 'none added'}")


def print_order(r, clocks, start, loaded):
    """Where the legitimate message stood in each stage's order; times from the
    resume (start) or from the load's end (loaded)."""
    print("where the legitimate message stood (times from resume; counts of messages ahead of it):")
    print(f"  route_vtime: {r['legit_vtime_ms'] / 1000 - r['legit_received_s']:+.1f} s after its receipt "
          f"({r['legit_received_s'] - loaded:+.3f} s from the load's end); ahead: {r['flood_vtime_before']} of "
          f"{r['flood']} flood, {r['over_quota_vtime_before']} of {r['over_quota']} over-quota")
    if r["over_quota"]:
        print(f"    flood vtimes span {(r['flood_vtime_max_ms'] - r['flood_vtime_min_ms']) / 1000:.1f} s; over-quota "
              f"{r['over_quota_vtime_min_ms'] / 1000 - loaded:+.1f} .. "
              f"{r['over_quota_vtime_max_ms'] / 1000 - loaded:+.1f} s from the load's end")
    for key, ms in sorted(clocks.items()):
        print(f"    clock {key}: {ms / 1000 - loaded:+.1f} s from the load's end")
    print(f"  routed_at:     {rel(r, 'legit_routed_s', start)}; ahead: {r['flood_routed_before']} flood, "
          f"{r['over_quota_routed_before']} over-quota (flood routed {rel(r, 'flood_first_routed_s', start)} .. "
          f"{rel(r, 'flood_last_routed_s', start)})")
    print(f"  delivering_at: {rel(r, 'legit_claimed_s', start)}; ahead: {r['flood_claimed_before']} flood, "
          f"{r['over_quota_claimed_before']} over-quota (over-quota claimed "
          f"{rel(r, 'over_quota_first_claimed_s', start)} .. {rel(r, 'over_quota_last_claimed_s', start)}, "
          f"{r['over_quota_attempted']} of them by the flood's end)")
    print(f"  final_at:      {rel(r, 'legit_final_s', start)}; ahead: {r['flood_final_before']} of "
          f"{r['flood_final']} flood deliveries ({r['flood_final_before'] / max(1, r['flood_final']):.1%})")


def main():
    flood = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    over_quota = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 600
    p = durable_pipeline(listener_extra=os.environ.get("WSMTP_FAIRBENCH_LISTENER", "").replace("\\n", "\n"))
    try:
        for section in ("queue", "router", "deliver"):
            # Every key at its default, unless WSMTP_FAIRBENCH_<SECTION> names some ("key=value;key=value").
            extra = os.environ.get(f"WSMTP_FAIRBENCH_{section.upper()}", "")
            set_section(p, section, **dict(kv.split("=", 1) for kv in extra.split(";") if kv))
        fs.add_mailboxes(p)
        fs.start_paused(p)
        t = time.time()
        fs.load(p, flood, over_quota, os.environ.get("WSMTP_FAIRBENCH_LEGIT_FROM", "127.0.0.1"))
        loaded = time.time()
        print(f"loaded {flood} flood + {over_quota} over-quota + 1 legitimate messages in {loaded - t:.1f} s "
              f"(wroute and wdeliver paused)", flush=True)
        clocks = fs.fairness_clocks(p)
        start = time.time()
        fs.resume(p)
        latency = fs.legit_arrival(p, start, timeout)
        fs.wait_flood_drained(p, timeout)
        r = fs.order_report(p)
        drain = r["flood_last_final_s"] - start
        print(f"legitimate message in its Maildir after {latency:6.3f} s (done_at {r['legit_done_s'] - start:6.3f} s)")
        print(f"flood drained (last flood delivery final) after {drain:6.3f} s")
        print(f"fraction legit / drain: {latency / drain:6.1%}  (issue 16 target: under 2 s and at most 5 %)")
        print_order(r, clocks, start, loaded)
        print_ramp_up(p, start, drain)
    finally:
        fs.resume(p)  # a stopped daemon would not act on close()'s SIGTERM
        p.close()


if __name__ == "__main__":
    main()
