"""Outbound peers for the delivery agent's relay tests: Postfix's smtp-sink
(a real SMTP server that only receives) started on a loopback port, each behind a
small counting TCP proxy so a test can see how many connections wdeliver opened
(batching) and to which relay (weighting), and that can stall the end of a
message's data (a slow relay). Every dumped message is one file:
X-Mail-Args / X-Rcpt-Args lines (the envelope) followed by the message.
Processes are started and stopped by PID; sockets and files live under `root`.
"""
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from pgtmp import free_port


def _shut_down(*socks):
    """Shuts the sockets down (a FIN even while another thread is blocked on them) before they are closed."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class CountingProxy:
    """Accepts on a loopback port and pipes each connection to 127.0.0.1:backend.
    A connection whose relay side stays silent for idle_timeout seconds is cut
    (None: never; a test that stalls longer sets it before connections open)."""

    idle_timeout = 5

    def __init__(self, backend_port):
        self.backend_port = backend_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.open = []
        self.closed = False
        self.lock = threading.Lock()
        self.stall_seconds = 0
        self.stalled = threading.Event()
        self.stalled_sender = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=5)
                backend.settimeout(self.idle_timeout)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.closed:  # accepted in the moment close() ran
                    client.close()
                    backend.close()
                    continue
                self.connections += 1
                self.open += [client, backend]
            threading.Thread(target=self._forward_client, args=(client, backend), daemon=True).start()
            threading.Thread(target=self._pump, args=(backend, client), daemon=True).start()

    def stall_final_dot(self, seconds):
        """Arms one stall: the next end of a message's data (CRLF.CRLF) a client
        sends is held back `seconds` before the relay sees it, so that client
        waits that long for the reply to its final dot. self.stalled is set when
        the stall begins; self.stalled_sender is that transaction's MAIL FROM."""
        with self.lock:
            self.stall_seconds = seconds
            self.stalled = threading.Event()
            self.stalled_sender = None

    def _forward_client(self, src, dst):
        """The client's side of _pump, watching for MAIL FROM and the final dot."""
        tail, sender = b"", None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                seen = tail + data
                senders = re.findall(rb"MAIL FROM:<([^>]*)>", seen, re.I)
                if senders:
                    sender = senders[-1].decode()
                # Only a CRLF.CRLF that ends in the new bytes: the tail was forwarded.
                end = seen.find(b"\r\n.\r\n", max(0, len(tail) - 4))
                with self.lock:
                    stall = self.stall_seconds if end >= 0 else 0
                    if stall:
                        self.stall_seconds = 0
                        self.stalled_sender = sender
                if stall:
                    self.stalled.set()
                    time.sleep(stall)
                dst.sendall(data)
                tail = seen[-256:]
        except OSError:
            pass
        _shut_down(src, dst)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        _shut_down(src, dst)

    def close(self):
        """Stops accepting (new connections are refused) and cuts open ones.
        shutdown() before close(): a pump thread blocked in recv() on a socket
        keeps it alive after close() alone, so no FIN would reach the client,
        which would then wait out its data timeout for a reply."""
        with self.lock:
            self.closed = True
            sockets = [self.sock, *self.open]
        for s in sockets:
            for end in (lambda: s.shutdown(socket.SHUT_RDWR), s.close):
                try:
                    end()
                except OSError:
                    pass
            self.open = []


class SmtpSink:
    """One smtp-sink on a loopback port, dumping each message into dump_dir,
    reachable through a CountingProxy at self.port."""

    def __init__(self, root, name, *flags):
        self.name = name
        self.dump_dir = os.path.join(root, f"sink-{name}")
        os.makedirs(self.dump_dir, exist_ok=True)
        os.chmod(root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dump_dir, "nobody")
        self.backend_port = free_port()
        self.log = os.path.join(root, f"sink-{name}.log")
        self.proc = None
        self.start(*flags)
        self.proxy = CountingProxy(self.backend_port)
        self.port = self.proxy.port

    def start(self, *flags):
        """(Re)starts smtp-sink with extra flags, e.g. ("-r", "data") for 4xx to DATA."""
        cmd = ["smtp-sink", *flags, "-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S."),
               f"127.0.0.1:{self.backend_port}", "64"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "nobody"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.backend_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smtp-sink {self.name} did not start")

    def stop_backend(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self):
        """The relay goes away: connections refused, open ones cut."""
        self.stop_backend()
        self.proxy.close()

    def messages(self):
        """[(mail_from, [rcpts], message bytes)] for every dumped message."""
        out = []
        for name in sorted(os.listdir(self.dump_dir)):
            with open(os.path.join(self.dump_dir, name), "rb") as f:
                raw = f.read()
            head, _, rest = raw.partition(b"\nReceived: ")
            mail_from, rcpts = None, []
            for line in head.decode(errors="replace").splitlines():
                if line.startswith("X-Mail-Args: "):
                    mail_from = line.split(" ", 1)[1].split(">")[0].lstrip("<")
                elif line.startswith("X-Rcpt-Args: "):
                    rcpts.append(line.split(" ", 1)[1].split(">")[0].lstrip("<"))
            out.append((mail_from, rcpts, b"Received: " + rest))
        return out
