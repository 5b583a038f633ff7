"""How the package reads against its layers: modules, lines, and imports that run back up.

``python tools/layers.py`` prints, per package, its modules and lines, then every import from a
package to one above it in the flow (a lower layer reaching up to a higher one). The closing
notes of refactors quote it before and after.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "orchestrator"

# Lower layers may not import higher ones. Same rank: siblings, may import each other.
RANK = {
    "": 0,  # errors, clock, resources, secrets, logsetup, procs, units
    "config": 1, "retention": 1, "schedule": 1,
    "history": 2, "hosts": 2, "baie": 2,
    "capture": 3, "mover": 3, "store": 3,
    "report": 4,
    "jobs": 5,
    "dashboard": 6,
    "service": 7, "cli": 7,
}


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "orchestrator":
        return ""
    return parts[1] if (ROOT / parts[1]).is_dir() else ""


def main() -> int:
    files = sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)
    modules: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    upward: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in files:
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        pkg = rel.parts[1] if len(rel.parts) > 2 else ""
        modules[pkg or "(top)"] += 1
        lines[pkg or "(top)"] += len(path.read_text().splitlines())
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING"
                       for n in ast.walk(block)}  # annotations only: nothing is imported
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                base = ROOT.parent.joinpath(*node.module.split("."))
                submodules = [f"{node.module}.{a.name}" for a in node.names
                              if (base / f"{a.name}.py").exists() or (base / a.name).is_dir()]
                # ``from package import module`` runs the package's __init__ too.
                targets = [node.module, *submodules]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if not target.startswith("orchestrator."):
                    continue
                graph.setdefault(name, set()).add(target)
                to = package_of(target)
                if to and to != pkg and RANK.get(to, 0) > RANK.get(pkg, 0):
                    upward.append(f"{name} -> {target}")
    print(f"{'package':<12} {'modules':>7} {'lines':>7}")
    for pkg in sorted(modules):
        print(f"{pkg:<12} {modules[pkg]:>7} {lines[pkg]:>7}")
    print(f"{'total':<12} {sum(modules.values()):>7} {sum(lines.values()):>7}")
    print(f"\nimports that run back up the layers: {len(upward)}")
    for line in sorted(upward):
        print(f"  {line}")
    cycles = _cycles(graph)
    print(f"\nimport circles: {len(cycles)}")
    for cycle in cycles:
        print(f"  {' -> '.join(cycle)}")
    return 0


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    sys.exit(main())
