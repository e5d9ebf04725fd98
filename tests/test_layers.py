"""The package's folders import downward only: every import, also those inside functions.

Units are the package's folders and top-level modules (``recbole_llmhni/<unit>``). The test
parses every ``import`` / ``from ... import`` of every module (``ast.walk``: the lazy ones
inside functions count too) and fails on a cycle between units, and on an import that goes up
the declared layer order (a unit imports only units of lower layers).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_llmhni"

#: bottom to top; a unit may import any unit of a lower layer (and its own unit)
LAYERS: List[Set[str]] = [
    {"_lazy", "_version", "compat", "artifacts", "registry"},
    {"config"},
    {"llm"},
    {"data"},
    {"prepare", "semantic"},
    {"models"},
    {"denoise", "training"},
    {"pipeline"},
    {"quick_start"},
    {"distributed"},
    {"cli", "__main__", "__init__"},
]


def _is_unit(name: str) -> bool:
    return (PACKAGE / name / "__init__.py").exists() or (PACKAGE / f"{name}.py").exists()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> Dict[Tuple[str, str], List[str]]:
    """``{(importer unit, imported unit): ["file:line", ...]}`` over the whole package."""
    edges: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts)
        source_unit = rel.parts[1] if len(rel.parts) > 1 else "__init__"
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: resolve against this module
                    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                elif node.module:
                    targets = [node.module]
                if targets and targets[0] == "recbole_llmhni":  # from recbole_llmhni import x: x a unit, or the root's
                    targets = [f"recbole_llmhni.{a.name}" if _is_unit(a.name) else "recbole_llmhni.__init__"
                               for a in node.names]
            for target in targets:
                if target == "recbole_llmhni":
                    target = "recbole_llmhni.__init__"
                if not target.startswith("recbole_llmhni."):
                    continue
                target_unit = _unit(target)
                if target_unit != source_unit:
                    edges[(source_unit, target_unit)].append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return edges


def _layer(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"unit {unit!r} is in no layer of tests/test_layers.py: add it where it belongs")


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    for unit in units:
        _layer(unit)


def test_no_import_goes_up_the_layers():
    upward = {
        edge: where for edge, where in _imports().items() if _layer(edge[1]) > _layer(edge[0])
    }
    assert not upward, "imports going up the layers: " + "; ".join(
        f"{a} -> {b} ({', '.join(w[:3])})" for (a, b), w in sorted(upward.items())
    )


def test_no_cycle_between_units():
    graph: Dict[str, Set[str]] = defaultdict(set)
    for a, b in _imports():
        graph[a].add(b)
    # Tarjan's strongly connected components
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles between units: {cycles}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The parser counts a lazy import inside a function body (what hid the old cycle)."""
    tree = ast.parse("def f():\n    from recbole_llmhni.quick_start import run_recbole_llmhni\n")
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found == ["recbole_llmhni.quick_start"]
    edges = _imports()
    assert ("cli", "quick_start") in edges  # cli imports quick_start only inside functions
