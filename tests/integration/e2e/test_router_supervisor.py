"""End-to-end: wroute's scaling supervisor (common/supervisor.cpp) on a real
database. Starts wroute with min_workers=1, max_workers=3 and a small backlog
per worker; asserts it starts with one worker, grows to three when a backlog
of received messages appears, restarts a worker killed with SIGKILL, drains
the queue, retires the surplus workers once idle, and on SIGTERM stops every
worker and exits 0. Also: a worker never outlives a supervisor killed with
SIGKILL (parent-death signal).
"""
import os
import re
import signal

import pytest
from pipeline import Pipeline
from router_harness import bulk_receive, count, pid_alive, set_router_options, wait_for, worker_pids

# The functions below run in file order on one supervisor: its worker count
# follows the backlog the earlier ones made and drained.


def started_workers(p):
    """Worker pids the supervisor has logged as started."""
    return {int(m) for m in re.findall(r"worker (\d+) started", p.log("wroute"))}


def live_workers(p, wroute):
    """Live children of the supervisor that it reported as its workers."""
    known = started_workers(p)
    return [pid for pid in worker_pids(wroute.pid) if pid in known]


def supervisor_lines(p):
    """The supervisor's own log lines, without the workers' per-message lines."""
    return "\n".join(line for line in p.log("wroute").splitlines() if "msg=" not in line)


@pytest.fixture(scope="module")
def p():
    with Pipeline() as p:
        p.add_domain()
        p.add_mailbox("ann")
        set_router_options(p, min_workers=1, max_workers=3, backlog_per_worker=50, idle_time="2s")
        # Routing made slow on purpose (10 ms per delivery row, ~10 s for the
        # backlog below with three workers): a batched router drains 3,000
        # messages in about a second, before the supervisor could be watched.
        p.pg.psql("CREATE FUNCTION slow_routing() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$; "
                  "CREATE TRIGGER slow_routing BEFORE INSERT ON deliveries "
                  "FOR EACH ROW EXECUTE FUNCTION slow_routing()", dbname="wsmtp")
        yield p


@pytest.fixture(scope="module")
def wroute(p):
    return p.start("wroute")


def test_starts_with_one_worker(p, wroute):
    wait_for(lambda: len(worker_pids(wroute.pid)) == 1, 20, "the first worker")


def test_grows_to_max_workers_under_backlog(p, wroute):
    # A backlog of 3,000 messages asks for max_workers; the routers drain it meanwhile.
    bulk_receive(p, 3000, "bulk@client.example", [f"ann@{p.domain}"])
    wait_for(lambda: len(live_workers(p, wroute)) == 3, 30, "three workers under backlog")


def test_restarts_a_worker_killed_with_sigkill(p, wroute):
    # The victim is a child the supervisor itself reported starting, and the
    # check waits for the supervisor's own account of the crash: a listing of
    # /proc children taken while processes come and go is only a snapshot.
    victim = live_workers(p, wroute)[0]
    os.kill(victim, signal.SIGKILL)
    try:
        wait_for(lambda: f"worker {victim} killed by signal 9" in p.log("wroute"), 30,
                 f"the supervisor to report worker {victim} killed")
    except AssertionError:
        print(supervisor_lines(p))
        raise
    wait_for(lambda: len(live_workers(p, wroute)) == 3 and victim not in live_workers(p, wroute), 30,
             "the killed worker replaced")


def test_drains_the_backlog_with_one_plan_per_message(p, wroute):
    wait_for(lambda: count(p, "SELECT count(*) FROM messages WHERE state IN (1, 2)") == 0, 240,
             "the backlog routed")
    assert count(p, "SELECT count(*) FROM messages WHERE state = 3") == 3000
    # Exactly one plan per message even though a worker died mid-stream.
    assert count(p, "SELECT count(*) FROM deliveries") == 3000


def test_retires_surplus_workers_when_idle(p, wroute):
    wait_for(lambda: len(worker_pids(wroute.pid)) == 1, 30, "surplus workers retired when idle")


def test_sigterm_stops_every_worker_and_exits_0(p, wroute):
    workers = worker_pids(wroute.pid)
    wroute.send_signal(signal.SIGTERM)
    assert wroute.wait(timeout=30) == 0
    wait_for(lambda: not any(pid_alive(w) for w in workers), 10, "workers gone after SIGTERM")
    p.procs["wroute"] = []


def test_a_supervisor_killed_outright_takes_its_workers(p):
    wroute = p.start("wroute")
    wait_for(lambda: len(worker_pids(wroute.pid)) == 1, 20, "a worker of the new supervisor")
    workers = worker_pids(wroute.pid)
    wroute.kill()
    wroute.wait(timeout=10)
    wait_for(lambda: not any(pid_alive(w) for w in workers), 20, "workers gone after the supervisor died")
    p.procs["wroute"] = []
