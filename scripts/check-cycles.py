#!/usr/bin/env python3
"""No import cycles between a crate's modules.

For every crate under the workspace, each module file is a node (`src/foo.rs` and
`src/foo/mod.rs` are `foo`, `src/foo/bar.rs` is `foo::bar`); a reference to
`crate::foo::bar::Item` anywhere in a module's code (a `use` line or a path in an
expression) is an edge to the longest module that path names (`foo::bar`), and
`super::x` inside `foo::bar` is an edge to `foo::x` (or `foo`). Test modules (`#[cfg(test)] mod tests { ... }` at the end
of a file) are left out: a test may reach anywhere. Any strongly connected component with
more than one module is a cycle, printed with one concrete path, and the script exits 1.

Usage: scripts/check-cycles.py [crate-src-dir ...]   (default: every */src in the workspace)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = r"[a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*"
CRATE_REF = re.compile(r"\bcrate::(" + PATH + ")")
# `super::Item`, `super::child::Item`, `super::*`: whatever follows, the parent is used.
SUPER_REF = re.compile(r"\bsuper::(" + PATH + ")?")
# `use crate::{a, b::c}` groups name several modules at once.
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def strip_comments_and_tests(text: str) -> str:
    # Drop the unit-test module (by convention the last item of a file).
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\b", text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def module_of(src: Path, file: Path) -> str:
    parts = list(file.relative_to(src).parts)
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


def resolve(path: str, modules: set) -> str:
    """The longest module named by `path` (`a::b::Item` -> `a::b` if that is a module)."""
    segs = path.split("::")
    for n in range(len(segs), 0, -1):
        cand = "::".join(segs[:n])
        if cand in modules:
            return cand
    return ""


def graph(src: Path) -> dict:
    files = {module_of(src, f): f for f in sorted(src.rglob("*.rs"))}
    # The crate root wires modules together; it is not a module.
    files = {m: f for m, f in files.items() if m not in ("lib", "main")}
    modules = set(files)
    edges: dict = {}
    for mod, file in files.items():
        text = strip_comments_and_tests(file.read_text(encoding="utf-8"))
        paths = set(CRATE_REF.findall(text))
        for group in CRATE_GROUP.findall(text):
            for item in group.split(","):
                paths.add(item.strip())
        parent = mod.rsplit("::", 1)[0] if "::" in mod else ""
        if parent:
            paths.update(f"{parent}::{p}" if p else parent for p in SUPER_REF.findall(text))
        targets = {resolve(p, modules) for p in paths} - {"", mod}
        # A module may use its own parent's items (`super::`) without that being a cycle
        # with the parent declaring it: only edges between distinct modules count.
        edges.setdefault(mod, set()).update(targets)
    return edges


def sccs(edges: dict) -> list:
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def a_cycle(edges: dict, comp: list) -> list:
    """One concrete cycle inside a strongly connected component (BFS back to the start)."""
    members = set(comp)
    start = sorted(comp)[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main() -> int:
    dirs = [Path(a) for a in sys.argv[1:]] or sorted(
        p for p in ROOT.glob("*/src") if (p.parent / "Cargo.toml").exists()
    )
    failed = False
    for src in dirs:
        edges = graph(src)
        for comp in sccs(edges):
            failed = True
            crate = src.parent.name
            print(f"{crate}: import cycle: {' -> '.join(a_cycle(edges, comp))}"
                  f" (modules in the cycle: {', '.join(sorted(comp))})")
    if not failed:
        print(f"no import cycles in {len(dirs)} crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
