"""The package reads top-down: no module imports from a layer above its own (README, "Development"), not even
inside a function, and no two modules import each other, directly or around a loop."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlab"
LAYERS = [  # bottom first
    {"errors", "_io", "_lock", "_lazy", "_types", "_options", "_version", "_html"},
    {"data"},
    {"models"},
    {"features", "evaluate"},
    {"train", "inspect", "attacks", "audit"},
    {"run"},
    {"tasks"},
    {"serve", "cluster"},
    {"cli", "_cli_options", "__main__", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks: never run, so they cannot make a cycle or a call upwards."""
    blocks = [b for b in ast.walk(tree) if isinstance(b, ast.If) and isinstance(b.test, ast.Name) and b.test.id == "TYPE_CHECKING"]
    return {n for b in blocks for n in ast.walk(b)}


def _imports(path: Path) -> set[str]:
    """Every transferlab module ``path`` imports, at import time or inside a function (dotted, without ``transferlab.``)."""
    package = _module(path).split(".") if path.name == "__init__.py" else _module(path).split(".")[:-1]
    package = [p for p in package if p]
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1] if node.level > 1 else package
            stem = [*base, *(node.module.split(".") if node.module else [])]
            for alias in node.names:  # ``from . import x`` may name a module
                candidate = ".".join([*stem, alias.name])
                found.add(candidate if _exists(candidate) else ".".join(stem))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transferlab."):
            found.add(node.module.removeprefix("transferlab."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("transferlab.") for a in node.names if a.name.startswith("transferlab."))
    return {m for m in found if m}


def _exists(module: str) -> bool:
    path = SRC.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def test_no_module_imports_from_a_layer_above_its_own_even_inside_a_function() -> None:
    wrong = []
    for module, targets in _graph().items():
        mine = LAYER[module.split(".")[0] or "__init__"]
        wrong += [f"{module} imports {t}" for t in sorted(targets) if LAYER.get(t.split(".")[0], -1) > mine]
    assert not wrong, wrong


def test_no_import_cycle_between_modules() -> None:
    """A depth-first search over module imports; a package's lazy ``__init__`` counts as importing nothing it
    only names for later (``_EXPORTS``), so the cycles found are real ones."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_every_top_level_part_has_a_layer() -> None:
    parts = {_module(m).split(".")[0] or "__init__" for m in SRC.rglob("*.py")}
    assert parts <= set(LAYER), parts - set(LAYER)


def test_the_layer_check_catches_a_deferred_call_upwards(tmp_path: Path) -> None:
    """The check itself can fail: an import inside a function of a lower layer is caught."""
    module = SRC / "models" / "_probe_upward_tmp.py"
    module.write_text("def f():\n    from ..run import Run\n    return Run\n")
    try:
        assert "run" in {t.split(".")[0] for t in _imports(module)}
        assert LAYER["run"] > LAYER["models"]
    finally:
        module.unlink()
