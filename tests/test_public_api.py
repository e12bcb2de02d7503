"""Every public name of ``transferlab`` is the real object on first access, in a fresh process, and type
checkers see the same names.

Regression test: in a fresh interpreter ``tl.inspect``, ``tl.models``, ``tl.attacks``, ``tl.data``,
``tl.features`` and ``tl.evaluate`` raised AttributeError on first access (the lazy ``__getattr__`` looked
for an attribute of that name inside the submodule). A test that touched every name in one interpreter
hid it: an earlier name had already imported the submodule. So each name gets a process of its own.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import transferlab

INIT = Path(transferlab.__file__)
PACKAGES = {"inspect", "models", "attacks", "data", "features", "evaluate"}  # tl.NAME is the subpackage itself
FUNCTIONS = {"train", "audit", "export", "report", "compare", "explain"}  # named like a subpackage or module; must stay the function
HEAVY = ("torch", "timm", "torchvision", "matplotlib")

# Run in a process that has not imported transferlab: access one name, say what it is and whether it is
# the object its defining module holds.
PROBE = '''
def probe(name):
    import importlib, inspect, json, sys, types
    try:
        import transferlab as tl
        value = getattr(tl, name)
        where = tl._EXPORTS.get(name)
        if where is None:
            real = value
        elif isinstance(value, types.ModuleType):
            real = sys.modules[f"transferlab.{name}"]
        else:
            real = getattr(importlib.import_module(where, "transferlab"), name)
        kind = "module" if isinstance(value, types.ModuleType) else "class" if inspect.isclass(value) else \\
            "function" if inspect.isfunction(value) else "callable" if callable(value) else type(value).__name__
        return {"name": name, "kind": kind, "real": value is real, "module": getattr(value, "__name__", None)}
    except BaseException as err:
        return {"name": name, "error": f"{type(err).__name__}: {err}"}
'''

# One fresh interpreter loads the third-party libraries every name shares (never transferlab), then forks
# a child per name, a few at a time: each child imports transferlab from scratch, as a new interpreter
# would, without paying for torch again (about 2 s a name otherwise).
FORKING = PROBE + '''
import json, os, sys
import numpy, PIL.Image, torch, torchvision, timm, matplotlib, safetensors.torch  # noqa: F401
assert not [m for m in sys.modules if m.split(".")[0] == "transferlab"], "the parent must not import transferlab"
running = {}

def reap():
    pid, _ = os.wait()
    name, read = running.pop(pid)
    with os.fdopen(read) as f:  # a few hundred bytes: the child never blocks on the pipe
        line = f.read()
    print(line or json.dumps({"name": name, "error": "the child died"}), flush=True)

for name in sys.argv[1:]:
    if len(running) >= min(4, os.cpu_count() or 1):
        reap()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(probe(name)).encode())
        os._exit(0)
    os.close(write)
    running[pid] = (name, read)
while running:
    reap()
'''


def _names() -> list[str]:
    return sorted(set(transferlab.__all__) | set(transferlab._EXPORTS))


def _probe_each(names: list[str]) -> dict[str, dict]:
    if hasattr(os, "fork"):
        done = subprocess.run([sys.executable, "-c", FORKING, *names], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}

    def one(name: str) -> dict:  # no fork (Windows): one interpreter per name, a few at a time
        script = PROBE + f"\nimport json\nprint(json.dumps(probe({name!r})))"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        return json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else {"name": name, "error": done.stderr[-2000:]}

    with ThreadPoolExecutor(4) as pool:
        return {r["name"]: r for r in pool.map(one, names)}


def test_every_public_name_is_the_real_object_on_first_access() -> None:
    results = _probe_each(_names())
    assert sorted(results) == _names()
    errors = {n: r["error"] for n, r in results.items() if "error" in r}
    assert not errors
    assert [n for n, r in results.items() if not r["real"]] == []
    for name in PACKAGES:
        assert (results[name]["kind"], results[name]["module"]) == ("module", f"transferlab.{name}")
    assert {n: results[n]["kind"] for n in FUNCTIONS} == {n: "function" for n in FUNCTIONS}
    others = {n: r["kind"] for n, r in results.items() if n not in PACKAGES | {"__version__"}}
    assert {n: k for n, k in others.items() if k not in ("class", "function", "callable")} == {}
    assert results["__version__"]["kind"] == "str"


def test_a_name_used_to_fail_in_a_plain_fresh_interpreter() -> None:
    """The brief's own form, without the fork, for the names that broke."""
    for name in sorted(PACKAGES):
        done = subprocess.run([sys.executable, "-c", f"import transferlab as tl; tl.{name}.__name__"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (name, done.stderr[-2000:])


def test_import_transferlab_alone_loads_no_torch() -> None:
    script = "import sys, transferlab; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(done.stdout.split()) & set(HEAVY) == set()


def test_all_lists_every_export() -> None:
    assert set(transferlab.__all__) == set(transferlab._EXPORTS) | {"__version__"}
    assert len(transferlab.__all__) == len(set(transferlab.__all__))


def _type_checking_imports() -> dict[str, str]:
    """name -> module (relative, as in ``_EXPORTS``) of every import in ``__init__``'s ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(INIT.read_text())
    blocks = [n for n in tree.body if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1, "expected one `if TYPE_CHECKING:` block in transferlab/__init__.py"
    found: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            name = alias.asname or alias.name
            assert name not in found, f"{name} imported twice"
            found[name] = f".{node.module}" if node.module else f".{alias.name}"
    return found


def test_type_checkers_see_every_export_from_where_it_is_defined() -> None:
    assert _type_checking_imports() == transferlab._EXPORTS

