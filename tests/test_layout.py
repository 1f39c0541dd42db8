"""The package layout holds: imports point down the layers of ``ml`` and never form a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ML = ROOT / "ml"

# Lowest first; a module may import its own layer (no cycles) or any layer below.
LAYERS = [
    {"ml.settings", "ml.schema", "ml.assets", "ml.faults"},
    {"ml.warehouse", "ml.dbt", "ml.marts", "ml.registry"},
    {"ml.sim"},
    {"ml.modeling"},
    {"ml.lifecycle"},
    {"ml.recommend", "ml.experiments", "ml.uplift", "ml.mmm", "ml.benchmark"},
    {"ml.decisions"},
    {"ml.ops"},
    {"ml.cli"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The layer member a module belongs to: ``ml.modeling.train`` -> ``ml.modeling``."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS (and to ml/__init__.py)")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every ``ml`` module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; import from ml.* instead"
            base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name == "ml" or name.startswith("ml."))
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ML.rglob("*.py")}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


GRAPH = _graph()


@pytest.mark.parametrize("module", sorted(set(GRAPH) - {"ml"}))
def test_imports_point_down_the_layers(module):
    own = _layer(_unit(module))
    upward = sorted(target for target in GRAPH[module]
                    if target != "ml" and _layer(_unit(target)) > own)
    assert not upward, f"{module} (layer {own}) imports upward: {upward}"


def test_nothing_imports_the_cli():
    importers = sorted(m for m, targets in GRAPH.items() if "ml.cli" in targets)
    assert not importers


def test_no_import_cycles():
    """Depth-first search for a back edge over module-level and deferred imports alike."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target in GRAPH and not state.get(target):
                if cycle := visit(target):
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if not state.get(module):
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule above can fail: a warehouse module importing modeling is flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ml.modeling.train import train_model\n")
    targets = _imports(bad, set(GRAPH))
    assert "ml.modeling.train" in targets
    assert _layer(_unit("ml.modeling.train")) > _layer(_unit("ml.warehouse.embedded"))
