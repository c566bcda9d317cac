#!/usr/bin/env python3
"""The state machine is the only writer of a message's state fields (DESIGN.md,
docs/ARCHITECTURE.md section 2): outside common/pg/transitions*.cpp no C++
source may write messages.state, held, held_reason, lease_owner, lease_token,
lease_expires, expired_claims or routing_failures.

Reads the string literals of every .cpp/.h of the programs and common/ (SQL
lives in them), joins each run of adjacent literals into one statement, and
looks at the SET list of every UPDATE of messages and the column list of every
INSERT INTO / COPY messages. Standard library only; needs no build.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIRS = ["common", "listener", "router", "deliver", "reaper", "ctl"]
ALLOWED = re.compile(r"^common/pg/transitions(_[a-z_]+)?\.cpp$")
COLUMNS = ["state", "held", "held_reason", "lease_owner", "lease_token", "lease_expires", "expired_claims",
           "routing_failures"]
COL = r"(?:\w+\.)?(" + "|".join(COLUMNS) + r")\b"
ASSIGN = re.compile(COL + r"\s*=(?!=)")
UPDATE = re.compile(r"\bUPDATE\s+(?:ONLY\s+)?messages\b(.*?)(?=\bWHERE\b|\bFROM\b|\bRETURNING\b|;|$)", re.I | re.S)
INSERT = re.compile(r"\b(?:INSERT\s+INTO|COPY)\s+messages\s*\(([^)]*)\)", re.I | re.S)


def statements(text):
    """Runs of adjacent C++ string literals (comments and char literals skipped), with their line."""
    out, cur, cur_line, i, n, line = [], [], 0, 0, len(text), 1
    gap = ""  # what separates the current literal from the last
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
            continue
        if c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == '"' or (text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            if c == "R":
                m = re.compile(r'R"([^(\s]*)\(').match(text, i)
                end = text.find(")" + m.group(1) + '"', m.end())
                body, j = text[m.end():end], end + len(m.group(1)) + 2
            else:
                j, buf = i + 1, []
                while j < n and text[j] != '"':
                    if text[j] == "\\":
                        buf.append(text[j:j + 2])
                        j += 2
                    else:
                        buf.append(text[j])
                        j += 1
                body, j = "".join(buf), j + 1
            if cur and gap.strip():  # something other than whitespace: a new statement
                out.append((cur_line, " ".join(cur)))
                cur = []
            if not cur:
                cur_line = line
            cur.append(body)
            line += text.count("\n", i, j)
            i, gap = j, ""
            continue
        if c == "\n":
            line += 1
        gap += c
        i += 1
    if cur:
        out.append((cur_line, " ".join(cur)))
    return out


def writes(sql):
    cols = set()
    for m in UPDATE.finditer(sql):
        set_list = m.group(1)
        k = re.search(r"\bSET\b", set_list, re.I)
        if k:
            cols.update(c.group(1) for c in ASSIGN.finditer(set_list[k.end():]))
    for m in INSERT.finditer(sql):
        cols.update(c for c in COLUMNS if re.search(r"\b" + c + r"\b", m.group(1)))
    return cols


def main():
    bad, allowed_hits = [], 0
    for d in DIRS:
        for path in sorted((ROOT / d).rglob("*")):
            if path.suffix not in (".cpp", ".h"):
                continue
            rel = path.relative_to(ROOT).as_posix()
            for line, sql in statements(path.read_text(encoding="utf-8", errors="replace")):
                cols = writes(sql)
                if not cols:
                    continue
                if ALLOWED.match(rel):
                    allowed_hits += 1
                else:
                    bad.append(f"{rel}:{line}: writes {', '.join(sorted(cols))} outside the state machine")
    # The scan itself must work: the state machine's own writes are found.
    if allowed_hits < 10:
        bad.append(f"scan found only {allowed_hits} writes in common/pg/transitions*.cpp: the scanner is broken")
    for b in bad:
        print(b)
    if bad:
        print("Every write of a message's state fields belongs in common/pg/transitions*.cpp (ARCHITECTURE.md §2).")
        return 1
    print(f"ok: {allowed_hits} writes of state fields, all in common/pg/transitions*.cpp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
