"""A scripted milter for the tests: the milter side of protocol version 6 as
Sendmail's libmilter speaks it (mfdef.h, engine.c), Python stdlib only.

It listens on 127.0.0.1:<free port> (or a Unix socket) and serves each MTA
connection in a thread of the test. What it answers is a Script the test sets
(and may change between tests): the negotiation (actions, protocol steps,
SETSYMLIST macro lists), per stage a reply (continue, accept, reject, tempfail,
discard, a reply code, shutdown, progress then a reply, a delay, a stall, a
dropped connection, garbage bytes) and at end of message the modifications
sent before the final verdict. It records everything it receives (Session,
Message) for the test's assertions. It knows nothing of wsmtp.
"""
import hashlib
import os
import select
import socket
import struct
import threading
import time


VERSION = 6

# Commands, MTA to milter (SMFIC_*), and the stage names the scripts use.
STAGE_OF_COMMAND = {
    b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data", b"L": "header",
    b"N": "eoh", b"B": "body", b"E": "eom", b"U": "unknown",
}
COMMAND_OF_STAGE = {stage: cmd for cmd, stage in STAGE_OF_COMMAND.items()}

# Actions (SMFIF_*) a milter may ask for in negotiation.
ADDHDRS, CHGBODY, ADDRCPT, DELRCPT, CHGHDRS, QUARANTINE, CHGFROM, ADDRCPT_PAR, SETSYMLIST = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100)
ALL_ACTIONS = 0x1ff

# Protocol steps (SMFIP_*): NO* = do not send that stage, NR_* = send it but
# the milter will not answer.
NOCONNECT, NOHELO, NOMAIL, NORCPT, NOBODY, NOHDRS, NOEOH, NR_HDR = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80
NOUNKNOWN, NODATA, SKIP, RCPT_REJ = 0x100, 0x200, 0x400, 0x800
NR_CONN, NR_HELO, NR_MAIL, NR_RCPT, NR_DATA, NR_UNKN, NR_EOH, NR_BODY = (
    0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000)
HDR_LEADSPC = 0x100000

# The no-reply step of each stage (end of message always gets a reply).
NO_REPLY_STEP = {"connect": NR_CONN, "helo": NR_HELO, "mail": NR_MAIL, "rcpt": NR_RCPT, "data": NR_DATA,
                 "unknown": NR_UNKN, "eoh": NR_EOH, "body": NR_BODY, "header": NR_HDR}

# Where a SETSYMLIST macro list applies (SMFIM_*).
MACRO_STAGE = {"connect": 0, "helo": 1, "mail": 2, "rcpt": 3, "data": 4, "eom": 5, "eoh": 6}

# libmilter refuses bigger packets from the MTA (MILTER_CHUNK_SIZE + slack);
# we refuse anything above this as a broken MTA.
MAX_PACKET = 1024 * 1024


def packet(cmd, payload=b""):
    """One packet: 4-byte big-endian length (command byte included), command, payload."""
    return struct.pack("!I", len(payload) + 1) + cmd + payload


def cstr(text):
    return (text.encode() if isinstance(text, str) else text) + b"\0"


# --- what the fake answers --------------------------------------------------------------------------


class Action:
    """A reply to one stage. kind: continue, accept, reject, tempfail, discard,
    replycode (text = "550 5.7.1 ..."), shutdown, connfail, skip, stall (never
    answer, until the MTA closes), close (drop the connection), garbage (data:
    raw bytes, no framing). delay: seconds to wait first; progress: that many
    SMFIR_PROGRESS packets, one every progress_every seconds, before the reply."""

    CODES = {"continue": b"c", "accept": b"a", "reject": b"r", "tempfail": b"t", "discard": b"d",
             "shutdown": b"4", "connfail": b"f", "skip": b"s"}

    def __init__(self, kind, text="", data=b"", delay=0.0, progress=0, progress_every=0.5):
        self.kind, self.text, self.data = kind, text, data
        self.delay, self.progress, self.progress_every = delay, progress, progress_every

    def after(self, seconds):
        """The same reply, sent seconds later."""
        return Action(self.kind, self.text, self.data, seconds, self.progress, self.progress_every)

    def with_progress(self, count, every=0.5):
        """The same reply, after count SMFIR_PROGRESS packets every `every` seconds."""
        return Action(self.kind, self.text, self.data, self.delay, count, every)

    def __repr__(self):
        return f"Action({self.kind}{' ' + self.text if self.text else ''})"


def Continue():  # noqa: N802 (the names read as the verdicts they send)
    return Action("continue")


def Accept():  # noqa: N802
    return Action("accept")


def Reject():  # noqa: N802
    return Action("reject")


def Tempfail():  # noqa: N802
    return Action("tempfail")


def Discard():  # noqa: N802
    return Action("discard")


def ReplyCode(text):  # noqa: N802
    """SMFIR_REPLYCODE: "550 5.7.1 text" (multi-line: lines joined by CRLF, as smfi_setmlreply)."""
    return Action("replycode", text=text)


def Shutdown():  # noqa: N802
    return Action("shutdown")


def ConnFail():  # noqa: N802
    return Action("connfail")


def Skip():  # noqa: N802
    return Action("skip")


def Stall():  # noqa: N802
    return Action("stall")


def Close():  # noqa: N802
    return Action("close")


def Garbage(data=b"this is not a milter reply\r\n"):  # noqa: N802
    """Bytes that are not a reply: by default a length field of 1.9 GB."""
    return Action("garbage", data=data)


class Mod:
    """A modification sent at end of message before the verdict (one or more packets)."""

    def __init__(self, name, packets):
        self.name, self.packets = name, packets

    def __repr__(self):
        return f"Mod({self.name})"


def AddHeader(name, value):  # noqa: N802
    return Mod("addheader", [packet(b"h", cstr(name) + cstr(value))])


def InsertHeader(index, name, value):  # noqa: N802
    """index 0 = before every header (our Received: included)."""
    return Mod("insheader", [packet(b"i", struct.pack("!I", index) + cstr(name) + cstr(value))])


def ChangeHeader(index, name, value):  # noqa: N802
    """index: the index-th (1-based) header of that name; value "" deletes it."""
    return Mod("chgheader", [packet(b"m", struct.pack("!I", index) + cstr(name) + cstr(value))])


def ChgFrom(address, args=None):  # noqa: N802
    return Mod("chgfrom", [packet(b"e", cstr(address) + (cstr(args) if args is not None else b""))])


def AddRcpt(address):  # noqa: N802
    return Mod("addrcpt", [packet(b"+", cstr(address))])


def AddRcptPar(address, args=""):  # noqa: N802
    return Mod("addrcpt_par", [packet(b"2", cstr(address) + cstr(args))])


def DelRcpt(address):  # noqa: N802
    return Mod("delrcpt", [packet(b"-", cstr(address))])


def ReplBody(body, chunk=65535):  # noqa: N802
    """SMFIR_REPLBODY: the new body, in packets of at most chunk bytes (as smfi_replacebody)."""
    body = body.encode() if isinstance(body, str) else body
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    return Mod("replbody", [packet(b"b", p) for p in pieces])


def Quarantine(reason):  # noqa: N802
    return Mod("quarantine", [packet(b"q", cstr(reason))])


class Script:
    """What the fake answers.

    actions, steps: what it asks for in negotiation (masked by what the MTA offers).
    macros: {stage: "j {client_addr}"}, sent as SETSYMLIST lists in the negotiation reply.
    negotiate: an Action instead of the negotiation reply (stall, close, garbage), or None.
    replies: {stage: Action or callable(session, payload) -> Action}; stages connect,
      helo, mail, rcpt, data, header, eoh, body, eom, unknown; default continue.
    eom_mods: a list of Mods, or callable(session) -> list, sent before the eom reply.
    record_body: keep the body bytes (else only length, chunk sizes and SHA-256).
    """

    def __init__(self, actions=ALL_ACTIONS, steps=0, macros=None, negotiate=None, replies=None, eom_mods=None,
                 record_body=True, version=VERSION):
        self.actions, self.steps, self.macros = actions, steps, macros or {}
        self.negotiate, self.replies, self.eom_mods = negotiate, replies or {}, eom_mods or []
        self.record_body, self.version = record_body, version

    def reply_for(self, stage, session, payload):
        r = self.replies.get(stage, Continue())
        return r(session, payload) if callable(r) else r

    def mods_for(self, session):
        return self.eom_mods(session) if callable(self.eom_mods) else list(self.eom_mods)


# --- what the fake records --------------------------------------------------------------------------


class Message:
    """One transaction as the milter saw it, from MAIL to end of message or abort."""

    def __init__(self, mail_args):
        self.mail = mail_args  # ["<a@b>", "SIZE=10", ...]
        self.rcpts = []  # each RCPT's args
        self.macros = {}  # stage -> {name: value}, the last macros sent for that stage
        self.rcpt_macros = []  # the macros of each RCPT, in order
        self.headers = []  # (name, value) as received
        self.eoh = False
        self.body = bytearray()  # when the script records bodies
        self.body_len = 0
        self.body_sha256 = hashlib.sha256()
        self.chunks = []  # size of each SMFIC_BODY
        self.end = None  # "eom" or "abort"
        self.stages = []  # the stages of this message in arrival order

    @property
    def sender(self):
        return self.mail[0] if self.mail else None


class Session:
    """One MTA connection: negotiation, connect, HELOs and its messages."""

    def __init__(self):
        self.offered = None  # (version, actions, steps) the MTA offered
        self.agreed = None  # (version, actions, steps) the fake answered
        self.commands = []  # every command's stage name ("macro", "abort", "quit", "optneg" included)
        self.macros = {}  # stage -> {name: value}, the last sent for that stage in the session
        self.connect = None  # {"hostname", "family", "port", "address"}
        self.helo = []
        self.messages = []
        self.ended = threading.Event()
        self.end = None  # "quit", "quit_nc", "eof", "closed" (by the fake), "error: ..."

    @property
    def message(self):
        """The current (last) message."""
        return self.messages[-1] if self.messages else None

    def wait_ended(self, timeout=10):
        if not self.ended.wait(timeout):
            raise AssertionError(f"the MTA did not end its milter connection within {timeout}s: {self.commands}")
        return self


# --- the server ------------------------------------------------------------------------------------


class _Closed(Exception):
    pass


class FakeMilter:
    """Listens until stop(); serves each connection with the script current when
    it connected (set_script). sessions: every connection, in order."""

    def __init__(self, script=None, unix_path=None):
        self.script = script or Script()
        self.sessions = []
        self.errors = []  # protocol violations by the MTA, as text
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns = []
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o666)
            self.spec = f"unix:{unix_path}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.spec = f"inet:127.0.0.1:{self.sock.getsockname()[1]}"
        self.unix_path = unix_path
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # --- for the tests ---
    def set_script(self, script):
        """Later connections use script; the records so far are dropped."""
        with self._lock:
            self.script = script
            self.sessions = []
            self.errors = []

    def session_with(self, helo=None, sender=None, port=None, timeout=10):
        """The first session whose HELO, a message's MAIL address or the client
        port of its SMFIC_CONNECT matches, waiting for it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                for s in self.sessions:
                    if helo is not None and helo in s.helo:
                        return s
                    if sender is not None and any(m.sender == f"<{sender}>" for m in s.messages):
                        return s
                    if port is not None and s.connect and s.connect.get("port") == port:
                        return s
            time.sleep(0.02)
        raise AssertionError(f"the milter saw no session with helo={helo!r} sender={sender!r} port={port!r}; "
                             f"it saw {[(s.connect, s.helo, s.commands[:12]) for s in self.sessions]}")

    def wait_for(self, predicate, timeout=10, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"fake milter: timed out after {timeout}s waiting for {what}")

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- the protocol ---
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                script = self.script
                session = Session()
                self.sessions.append(session)
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, script, session), daemon=True).start()

    def _serve(self, conn, script, session):
        conn.settimeout(None)
        io = _Io(conn, self._stop)
        try:
            _Conversation(io, script, session).run()
        except _Closed as e:
            session.end = str(e) or "eof"
        except ConnectionError as e:  # the MTA reset the connection: as much an end as a close
            session.end = f"reset: {e!r}"
        except Exception as e:  # a broken MTA or a bug here: recorded, shown by the test's assert
            session.end = f"error: {e!r}"
            with self._lock:
                self.errors.append(f"{e!r}")
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            session.ended.set()


class _Io:
    """Packet reads and writes on one connection; reads give up when the fake stops."""

    def __init__(self, conn, stop):
        self.conn, self.stop, self.buf = conn, stop, b""

    def _fill(self, n):
        while len(self.buf) < n:
            if not self.wait_readable(None):
                raise _Closed("stopped")
            data = self.conn.recv(262144)
            if not data:
                raise _Closed("eof")
            self.buf += data

    def wait_readable(self, seconds):
        """True when bytes (or EOF) are there; False when the fake stops or seconds pass."""
        deadline = None if seconds is None else time.time() + seconds
        while not self.stop.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.time())
            if left <= 0:
                return False
            if self.buf or select.select([self.conn], [], [], left)[0]:
                return True
        return False

    def read_packet(self):
        self._fill(4)
        (length,) = struct.unpack("!I", self.buf[:4])
        if length == 0 or length > MAX_PACKET:
            raise ValueError(f"packet length {length}")
        self._fill(4 + length)
        cmd, payload = self.buf[4:5], self.buf[5:4 + length]
        self.buf = self.buf[4 + length:]
        return cmd, payload

    def send(self, data):
        self.conn.sendall(data)


def _strings(payload):
    """NUL-terminated strings of a payload (the last NUL required)."""
    if payload and not payload.endswith(b"\0"):
        raise ValueError(f"string not NUL-terminated: {payload[:60]!r}")
    return [p.decode("utf-8", "surrogateescape") for p in payload.split(b"\0")[:-1]]


class _Conversation:
    def __init__(self, io, script, session):
        self.io, self.script, self.session = io, script, session
        self.steps = 0  # the protocol steps agreed
        self.pending_macros = {}  # command byte -> {name: value}

    def run(self):
        while True:
            cmd, payload = self.io.read_packet()
            if cmd == b"O":
                self.session.commands.append("optneg")
                self._negotiate(payload)
            elif cmd == b"D":
                self.session.commands.append("macro")
                if not payload:
                    raise ValueError("empty SMFIC_MACRO")
                names = _strings(payload[1:])
                if len(names) % 2:
                    raise ValueError(f"odd macro list {names}")
                self.pending_macros[payload[0:1]] = dict(zip(names[::2], names[1::2]))
            elif cmd == b"A":
                self.session.commands.append("abort")
                if self.session.message and self.session.message.end is None:
                    self.session.message.end = "abort"
            elif cmd == b"Q":
                self.session.commands.append("quit")
                self.session.end = "quit"
                return
            elif cmd == b"K":
                self.session.commands.append("quit_nc")
            elif cmd in STAGE_OF_COMMAND:
                self._stage(STAGE_OF_COMMAND[cmd], cmd, payload)
            else:
                raise ValueError(f"unknown command {cmd!r}")

    def _negotiate(self, payload):
        if len(payload) < 12:
            raise ValueError(f"short SMFIC_OPTNEG {payload!r}")
        version, actions, steps = struct.unpack("!III", payload[:12])
        self.session.offered = (version, actions, steps)
        if self.script.negotiate is not None:
            self._perform(self.script.negotiate)
            return
        self.steps = self.script.steps & steps
        agreed = (min(self.script.version, version), self.script.actions & actions, self.steps)
        self.session.agreed = agreed
        reply = struct.pack("!III", *agreed)
        for stage, names in self.script.macros.items():
            reply += struct.pack("!I", MACRO_STAGE[stage]) + cstr(names)
        self.io.send(packet(b"O", reply))

    def _stage(self, stage, cmd, payload):
        s = self.session
        s.commands.append(stage)
        macros = self.pending_macros.pop(cmd, None)
        if macros is not None:
            s.macros[stage] = macros
        parsed = self._parse(stage, payload)
        if stage == "connect":
            s.connect = parsed
        elif stage == "helo":
            s.helo.append(parsed)
        elif stage == "mail":
            s.messages.append(Message(parsed))
        msg = s.message
        if msg is not None and stage not in ("connect", "helo", "unknown"):
            msg.stages.append(stage)
            if macros is not None:
                msg.macros[stage] = macros
            if stage == "rcpt":
                msg.rcpts.append(parsed)
                msg.rcpt_macros.append(macros or {})
            elif stage == "header":
                msg.headers.append(parsed)
            elif stage == "eoh":
                msg.eoh = True
            elif stage in ("body", "eom") and payload:
                # SMFIC_BODYEOB may carry the last piece of the body (libmilter treats it as one).
                self._record_body(msg, payload, stage == "body")
        if stage == "eom":
            if msg is not None:
                msg.end = "eom"
            for mod in self.script.mods_for(s):
                for p in mod.packets:
                    self.io.send(p)
        elif self.steps & NO_REPLY_STEP[stage]:
            return  # negotiated: the MTA does not wait for this stage
        self._perform(self.script.reply_for(stage, s, parsed))

    @staticmethod
    def _parse(stage, payload):
        """What a script's callable gets: connect a dict, helo a name, mail and
        rcpt the arguments, header (name, value), body and eom the bytes."""
        if stage == "connect":
            host, rest = payload.split(b"\0", 1)
            info = {"hostname": host.decode(), "family": rest[:1].decode()}
            if info["family"] != "U":
                (info["port"],) = struct.unpack("!H", rest[1:3])
                info["address"] = _strings(rest[3:])[0]
            return info
        if stage == "helo":
            return _strings(payload)[0]
        if stage in ("mail", "rcpt", "unknown"):
            return _strings(payload)
        if stage == "header":
            name, value = _strings(payload)
            return name, value
        if stage in ("body", "eom"):
            return payload
        if payload:
            raise ValueError(f"{stage} with a payload {payload[:60]!r}")
        return None

    def _record_body(self, msg, chunk, is_chunk):
        if is_chunk:
            msg.chunks.append(len(chunk))
        msg.body_len += len(chunk)
        msg.body_sha256.update(chunk)
        if self.script.record_body:
            msg.body += chunk

    def _perform(self, action):
        if action.delay:
            self.io.stop.wait(action.delay)
        for _ in range(action.progress):
            self.io.send(packet(b"p"))
            time.sleep(action.progress_every)
        if action.kind in Action.CODES:
            self.io.send(packet(Action.CODES[action.kind]))
        elif action.kind == "replycode":
            self.io.send(packet(b"y", cstr(action.text)))
        elif action.kind == "garbage":
            self.io.send(action.data)
        elif action.kind == "close":
            self.io.conn.shutdown(socket.SHUT_RDWR)
            raise _Closed("closed")
        elif action.kind == "stall":
            # Never answer. The MTA gives up by closing (or sends more, e.g.
            # SMFIC_ABORT or SMFIC_QUIT): carry on reading then.
            self.io.wait_readable(None)
        else:
            raise ValueError(f"unknown action {action.kind}")
