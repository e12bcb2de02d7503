"""The package reads top-down: no module imports from a layer above its own (README, "Development")."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlab"
LAYERS = [  # bottom first
    {"errors", "_io", "_lazy", "_types", "_options"},
    {"data"},
    {"models"},
    {"features", "evaluate"},
    {"train", "inspect", "attacks", "audit"},
    {"run"},
    {"training"},
    {"serve", "report", "export", "explain_run", "attack_run", "cluster", "compare"},
    {"cli", "_cli_options", "__main__", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
# Run's notebook methods (run.attack, .export, .report) call the modules that answer them, importing them
# inside the method: the one sanctioned call upwards, at call time only (or for type hints), never at import.
FACADE = {("run", "attack_run"), ("run", "export"), ("run", "report")}


def _top(module: Path) -> str:
    return module.relative_to(SRC).parts[0].removesuffix(".py")


def _deferred(tree: ast.AST) -> set[ast.AST]:
    """Nodes that run only when called (function bodies) or never (``if TYPE_CHECKING:`` blocks)."""
    blocks = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    blocks += [b for b in ast.walk(tree) if isinstance(b, ast.If) and isinstance(b.test, ast.Name) and b.test.id == "TYPE_CHECKING"]
    return {n for b in blocks for n in ast.walk(b)}


def _imported(module: Path, facade: set[str] = frozenset()) -> set[str]:
    """Top-level transferlab parts each import of ``module`` reaches (relative or absolute); deferred imports
    of a ``facade`` part (in a function, or for type checking only) are left out."""
    here = module.relative_to(SRC).parent.parts
    found = set()
    tree = ast.parse(module.read_text())
    deferred = _deferred(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node in deferred and node.level == 1 and node.module and node.module.split(".")[0] in facade:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1] if node.level > 1 else here
                parts = [*base, *(node.module.split(".") if node.module else [])]
                if not parts:  # `from . import x` at the top: x is a top-level part
                    found.update(alias.name for alias in node.names)
                else:
                    found.add(parts[0])
            elif node.module and node.module.startswith("transferlab."):
                found.add(node.module.split(".")[1])
    return found - {"__version__"}


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    wrong = []
    for module in sorted(SRC.rglob("*.py")):
        mine = LAYER[_top(module)]
        for target in _imported(module, {up for low, up in FACADE if low == _top(module)}):
            if target in LAYER and LAYER[target] > mine:
                wrong.append(f"{module.relative_to(SRC)} imports {target}")
    assert not wrong, wrong


def test_every_top_level_part_has_a_layer() -> None:
    parts = {_top(m) for m in SRC.rglob("*.py")}
    assert parts <= set(LAYER), parts - set(LAYER)
