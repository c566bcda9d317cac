#!/usr/bin/env python3
"""Source scan for STYLE.md §2: a program never includes another program's headers.

The programs are the folders the top CMakeLists.txt adds besides common/ and
tests/ (listener, router, deliver, reaper, ctl). Every #include in them is
resolved the two ways a compiler could: next to the including file, and from the
repository root. If either lands in another program's folder, that is a violation; common/
may include no program's headers at all. The build's include paths already refuse
`"router/route.h"` from listener/ (see layering_compile_* in CMakeLists.txt);
this scan also catches what no include path can stop, such as `"../router/route.h"`.

Usage: check_includes.py [repository root]; exits 1 and lists every violation.
"""
import os
import re
import sys

SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')


def owner(root, path):
    """The top folder of the repository that path lies in, or None outside it."""
    rel = os.path.relpath(path, root)
    if rel.startswith(".."):
        return None
    return rel.split(os.sep)[0]


def programs(root):
    """The program folders: every add_subdirectory() of the top CMakeLists.txt but common and tests."""
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        dirs = re.findall(r"^\s*add_subdirectory\((\w+)\)", f.read(), re.M)
    return tuple(d for d in dirs if d not in ("common", "tests"))


def violations(root, program_dirs):
    found = []
    for folder in program_dirs + ("common",):
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        for base in (dirpath, root):
                            target = owner(root, os.path.normpath(os.path.join(base, m.group(1))))
                            if target in program_dirs and target != folder:
                                found.append(f"{os.path.relpath(path, root)}:{lineno}: includes "
                                             f"{m.group(1)!r} from {target}/")
                                break
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    program_dirs = programs(root)
    if len(program_dirs) < 2:
        sys.exit(f"check_includes: found program folders {program_dirs} in {root}/CMakeLists.txt")
    for folder in program_dirs + ("common",):
        if not os.path.isdir(os.path.join(root, folder)):
            sys.exit(f"check_includes: {folder}/ not found under {root}")
    found = violations(root, program_dirs)
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} include(s) cross a program boundary (STYLE.md §2): "
              "move what both programs need to common/")
        return 1
    print(f"no program includes another program's headers ({', '.join(program_dirs)}; common)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
