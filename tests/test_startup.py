"""Start-up: `import transferlab` and every command's --help load neither torch nor timm (PEP 562 lazy
attributes), so a typo or a help page answers at once; the public names still resolve on first use."""

import inspect
import subprocess
import sys
import types

HEAVY = ("torch", "timm", "torchvision", "matplotlib", "ray", "pyarrow")

SCRIPT = """
import sys
from click.testing import CliRunner
import typer
import transferlab
from transferlab.cli import app
command = typer.main.get_command(app)
names = []
def walk(group, prefix):
    for name, sub in group.commands.items():
        names.append(prefix + [name])
        if hasattr(sub, "commands"):
            walk(sub, prefix + [name])
walk(command, [])
runner = CliRunner()
for args in [[]] + names:
    result = runner.invoke(command, [*args, "--help"])
    assert result.exit_code == 0, (args, result.output)
print(len(names), "commands")
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_import_and_every_help_page_load_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    count, loaded = done.stdout.splitlines()[-2:]
    assert int(count.split()[0]) >= 15  # every command was asked
    assert not set(loaded.split()) & set(HEAVY), sorted(set(loaded.split()) & set(HEAVY))


def test_python_m_transferlab_help_imports_no_torch_module() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "transferlab", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Usage" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [m for m in imported if m.split(".")[0] in HEAVY]


def test_public_names_resolve_lazily_and_functions_beat_their_modules() -> None:
    import transferlab as tl
    import transferlab.train.finetune  # noqa: F401  (loading the module must not replace tl.train, the function)

    assert callable(tl.train) and callable(tl.explain) and callable(tl.export) and callable(tl.report)
    assert callable(tl.inspect.dream) and callable(tl.inspect.gradcam)
    from transferlab.train import finetune

    assert callable(finetune)
    assert set(tl.__all__) <= set(dir(tl))
    for name in tl.__all__:
        value = getattr(tl, name)
        if name == "__version__":
            assert isinstance(value, str) and value[0].isdigit(), value
        elif isinstance(value, types.ModuleType):  # tl.data, tl.inspect, ...: the subpackage itself
            assert value is sys.modules[f"transferlab.{name}"], name
        else:  # a class or function: the very object its module defines under that name (no stand-in)
            assert inspect.isclass(value) or inspect.isfunction(value), (name, value)
            assert value.__name__ == name and value is getattr(sys.modules[value.__module__], name), name
