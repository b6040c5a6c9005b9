"""The package's import graph has no cycles, between modules or between subpackages.

The graph is read from the source with ``ast`` (nothing is imported), and counts every import,
also the ones inside functions: a lazy import that closes a cycle still ties two layers together.
Run ``python tests/test_import_graph.py`` to print the graph's cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = "groot_kit"
ROOT = Path(__file__).resolve().parents[1] / PKG


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: modules of the package it imports} for every .py file under ``root``."""
    files = {_module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[:len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:  # `import groot_kit.sim.env` -> the module; attributes dropped
                    t = t.rpartition(".")[0]
                if t.startswith(PKG + ".") and t != mod:
                    graph[mod].add(t)
    return graph


def unit_of(module: str) -> str:
    """The top-level piece a module belongs to: ``groot_kit.sim.env`` -> ``groot_kit.sim``."""
    return ".".join(module.split(".")[:2])


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, deps in graph.items():
        out.setdefault(unit_of(m), set()).update(unit_of(d) for d in deps if unit_of(d) != unit_of(m))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth <= number of modules (~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(graph, comps) -> str:
    return "\n".join(" <-> ".join(c) + "\n    " + "; ".join(f"{a} -> {b}" for a in c for b in sorted(graph[a])
                                                          if b in c) for c in comps)


def test_graph_sees_known_edges():
    g = import_graph()
    assert "groot_kit.embodiment" in g["groot_kit.sim.env"]          # from groot_kit.embodiment import ...
    assert "groot_kit.sim.mjcf" in g["groot_kit.sim.arm_generator"]   # from groot_kit.sim import mjcf
    assert "groot_kit.embodiment.spec" in g["groot_kit.embodiment.loader"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Two lazy (function-level) imports inside one subpackage close a loop between two modules there:
# `GrootPolicy.from_pretrained` dispatches NVIDIA-layout folders to `load_gr00t_checkpoint`, which
# builds a GrootPolicy; the server's CLI builds the `GrootPolicyFn` that serves through it. They are
# listed so that any *new* module cycle fails; removing one of them needs no change here.
KNOWN_MODULE_CYCLES = [
    ["groot_kit.model.gr00t_checkpoint", "groot_kit.model.policy"],
    ["groot_kit.runtime.policy_fn", "groot_kit.runtime.server"],
]


def test_no_new_module_cycles():
    g = import_graph()
    comps = [c for c in cycles(g) if c not in KNOWN_MODULE_CYCLES]
    assert not comps, "import cycles between modules:\n" + _describe(g, comps)


def test_no_subpackage_cycles():
    g = unit_graph(import_graph())
    comps = cycles(g)
    assert not comps, "import cycles between groot_kit's subpackages/modules:\n" + _describe(g, comps)


def test_embodiment_does_not_import_sim():
    g = unit_graph(import_graph())
    assert "groot_kit.sim" not in g["groot_kit.embodiment"]


if __name__ == "__main__":
    g = import_graph()
    print("module cycles:\n" + (_describe(g, cycles(g)) or "none"))
    u = unit_graph(g)
    print("subpackage cycles:\n" + (_describe(u, cycles(u)) or "none"))
