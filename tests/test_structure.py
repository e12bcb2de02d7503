"""The package reads top-down: no module imports from a layer above its own (README, "Development")."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlab"
LAYERS = [  # bottom first
    {"errors", "_io", "_lazy", "_types"},
    {"data"},
    {"models"},
    {"features", "evaluate"},
    {"train", "inspect", "attacks"},
    {"run"},
    {"training"},
    {"serve", "report", "export", "explain", "adversarial", "compare"},
    {"cli", "__main__", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module: Path) -> str:
    return module.relative_to(SRC).parts[0].removesuffix(".py")


def _imported(module: Path) -> set[str]:
    """Top-level transferlab parts each import of ``module`` reaches (relative or absolute)."""
    here = module.relative_to(SRC).parent.parts
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
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
        for target in _imported(module):
            if target in LAYER and LAYER[target] > mine:
                wrong.append(f"{module.relative_to(SRC)} imports {target}")
    assert not wrong, wrong


def test_every_top_level_part_has_a_layer() -> None:
    parts = {_top(m) for m in SRC.rglob("*.py")}
    assert parts <= set(LAYER), parts - set(LAYER)
