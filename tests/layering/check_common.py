#!/usr/bin/env python3
"""Source scan for STYLE.md §2 (issue 14): common/ holds only what two or more
programs use, and no file in common/pg/ is named after one program.

A module of common/ is a file name without its extension (pg/directory =
pg/directory.h and pg/directory.cpp). A program uses a module when one of its
sources includes the module's header, or when a module it uses includes it
(from either of that module's files, since the program links both). Tests do
not count: a test may include anything. The state machine (pg/transitions*)
is exempt from the count: every write of a message's state fields goes through
it whichever program asks (docs/ARCHITECTURE.md §2).

Usage: check_common.py [repository root]; exits 1 and lists every violation.
"""
import os
import re
import sys

from check_includes import programs

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
STATE_MACHINE = re.compile(r"^pg/transitions(_[a-z_]+)?$")


def sources(folder):
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith((".h", ".cpp")):
                yield os.path.join(dirpath, name)


def common_includes(path, bases, common):
    """The modules of common/ that the file at path includes, each resolved as the compiler would."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    found = set()
    for m in INCLUDE.finditer(text):
        for base in (os.path.dirname(path),) + bases:
            target = os.path.normpath(os.path.join(base, m.group(1)))
            if os.path.isfile(target):
                if target.startswith(common + os.sep):
                    found.add(os.path.splitext(os.path.relpath(target, common))[0])
                break
    return found


def users(root, program_dirs):
    """{module of common/: set of programs that use it}."""
    common = os.path.join(root, "common")
    deps = {}
    for path in sources(common):
        mod = os.path.splitext(os.path.relpath(path, common))[0]
        deps.setdefault(mod, set()).update(common_includes(path, (common,), common) - {mod})
    used = {mod: set() for mod in deps}
    for prog in program_dirs:
        folder = os.path.join(root, prog)
        todo = [mod for path in sources(folder) for mod in common_includes(path, (folder, common), common)]
        seen = set()
        while todo:
            mod = todo.pop()
            if mod not in seen:
                seen.add(mod)
                todo.extend(deps.get(mod, ()))
        for mod in seen:
            used.setdefault(mod, set()).add(prog)
    return used


def violations(root, program_dirs):
    found = []
    for mod, progs in sorted(users(root, program_dirs).items()):
        if len(progs) < 2 and not STATE_MACHINE.match(mod):
            who = f"only {next(iter(progs))}/" if progs else "no program"
            found.append(f"common/{mod}: used by {who}; move it into its program")
    pg = os.path.join(root, "common", "pg")
    for name in sorted(os.listdir(pg)):
        stem = name.split(".")[0]
        for prog in program_dirs:
            if stem == prog or stem.startswith(prog + "_"):
                found.append(f"common/pg/{name}: named after {prog}; common/pg/ holds what programs share")
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    program_dirs = programs(root)
    if len(program_dirs) < 2:
        sys.exit(f"check_common: found program folders {program_dirs} in {root}/CMakeLists.txt")
    used = users(root, program_dirs)
    # The scan itself must work: the connection code is used by every program.
    if used.get("pg/connection", set()) != set(program_dirs):
        sys.exit(f"check_common: pg/connection used by {sorted(used.get('pg/connection', ()))}, "
                 f"expected every program {program_dirs}: the scanner is broken")
    found = violations(root, program_dirs)
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} violation(s) of STYLE.md §2: common/ holds only what two or more programs use, "
              "under names that are no program's")
        return 1
    print(f"ok: all {len(used)} modules of common/ are used by two or more programs (or are the state machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
