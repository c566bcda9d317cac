"""Helpers for the router's end-to-end tests and benchmark: router settings in
the Pipeline's configuration, directory rows for schema 003 written with SQL
(the wsmtpctl commands for them are a separate issue), bulk-received messages,
and the worker processes of a running wroute supervisor.
"""
import os
import time


def set_router_options(p, **options):
    """Adds key = value lines to the [router] section of the Pipeline's config."""
    with open(p.config) as f:
        text = f.read()
    lines = "".join(f"{k} = {v}\n" for k, v in options.items())
    text = text.replace("[router]\n", "[router]\n" + lines, 1)
    with open(p.config, "w") as f:
        f.write(text)


def sql(p, statement):
    return p.pg.psql(statement, dbname="wsmtp")


def count(p, statement):
    return int(sql(p, statement) or 0)


def quote(s):
    return "'" + s.replace("'", "''") + "'"


def bulk_receive(p, n, sender, rcpts, client="192.0.2.7", batch=500, tag="bulk", body_size=0):
    """n messages in state 1 with a small body (or one of about body_size
    bytes), through the schema (the fairness trigger stamps them as the
    listener's commit would), in batches."""
    arr = "ARRAY[" + ",".join(quote(r) for r in rcpts) + "]::text[]"
    filler = f"repeat('x', {max(0, body_size - 30)})"
    done = 0
    while done < n:
        k = min(batch, n - done)
        sql(p, f"""
            WITH m AS (INSERT INTO messages (envelope_from, client_addr, received_by)
                       SELECT {quote(sender)}, {quote(client)}::inet, {quote(tag)} FROM generate_series(1, {k})
                       RETURNING id),
            r AS (INSERT INTO recipients (message_id, seq, address)
                  SELECT m.id, x.ord - 1, x.a FROM m, unnest({arr}) WITH ORDINALITY AS x(a, ord)),
            b AS (INSERT INTO body_chunks (message_id, seq, data)
                  SELECT id, 0, convert_to(E'Subject: bench\\r\\n\\r\\nbody' || {filler} || E'\\r\\n', 'UTF8')
                  FROM m)
            SELECT 1;
            UPDATE messages SET state = 1 WHERE state = 0 AND received_by = {quote(tag)};""")
        done += k


def worker_pids(pid):
    """The live child processes of pid (the supervisor's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    return [k for k in kids if os.path.exists(f"/proc/{k}") and not _zombie(k)]


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def pid_alive(pid):
    return os.path.exists(f"/proc/{pid}") and not _zombie(pid)


def wait_for(predicate, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
