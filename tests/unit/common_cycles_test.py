#!/usr/bin/env python3
"""No include cycles among the modules of common/ (issue 14): a module is a
file name without its extension (pg/transitions = transitions.h and
transitions.cpp), and module A depends on B when a file of A includes B's
header. Standard library only; needs no build. Optional argument: the
directory to scan (default: common/ of this tree)."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def graph(base):
    g = {}
    for f in sorted(base.rglob("*")):
        if f.suffix not in (".cpp", ".h"):
            continue
        mod = f.relative_to(base).with_suffix("").as_posix()
        deps = g.setdefault(mod, set())
        for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)\.h"', f.read_text(encoding="utf-8", errors="replace"), re.M):
            if (base / (m.group(1) + ".h")).exists() and m.group(1) != mod:
                deps.add(m.group(1))
    return g


def cycles(g):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = n
        n += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = n
                    n += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    base = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "common"
    g = graph(base)
    found = cycles(g)
    for c in found:
        print("include cycle in common/: " + " <-> ".join(c))
    if found:
        return 1
    print(f"ok: {len(g)} modules of common/, no include cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
