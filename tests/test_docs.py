"""The README and the docs cannot go stale: their quick shell transcripts are re-run and compared, no page shows
an absolute path of one machine, the README's command table lists every command, and its links resolve.

The docs site itself is built by `make docs` (`mkdocs build --strict`), which `make test` runs before pytest.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OXFORD_MINI = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini"
USER_FILES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]

# A path from the file-system root in a folder no reader shares: the rule of the shared abs_paths.py hook, kept
# here so the test runs without it. System folders (/dev, /usr, /tmp, ...) and generic example roots (/shared,
# /data, /mnt, /path/to) are allowed.
MACHINE_PATH = re.compile(r"(?<![\w.:/~-])/(?!(?:dev|usr|etc|tmp|proc|opt|bin|var|sys|run|shared|data|mnt|srv|scratch|path|to)/)[a-z][\w.-]*/[\w.-]+")


def load_transcripts():
    spec = importlib.util.spec_from_file_location("transcripts", ROOT / "scripts" / "transcripts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["transcripts"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def machine_paths(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path.relative_to(ROOT)}:{i}: {m.group(0)}" for i, line in enumerate(lines, 1) for m in MACHINE_PATH.finditer(line)]


def test_no_page_shows_an_absolute_path_of_one_machine():
    found = [hit for path in USER_FILES if path.exists() for hit in machine_paths(path)]
    assert not found, "absolute paths of one machine (write them relative to the repository root):\n" + "\n".join(found[:30])


def test_the_path_check_catches_a_planted_path(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("run saved to /home/alice/transferlab/runs/demo\nfine: ../shared/data, /tmp/dl, /shared/photos, ~/data\n")
    assert machine_paths(page) == ["page.md:1: /home/alice"]


def test_the_stale_check_catches_a_planted_difference(tmp_path):
    transcripts = load_transcripts()
    page = tmp_path / "page.md"
    page.write_text("<!-- transcript: echo features 3.6 s, 598 computed -->\n```console\n$ echo features 3.6 s, 598 computed\nfeatures 5.2 s, 0 computed\n```\n")
    assert transcripts.stale([page]) == []  # timings and cache counts differ: not stale
    page.write_text(page.read_text().replace("features 5.2 s", "faetures 5.2 s"))  # the planted difference
    (diff,) = transcripts.stale([page])
    assert "-faetures <time>, <n> computed" in diff and "+features <time>, <n> computed" in diff


def test_transcripts_are_written_with_relative_paths_and_no_progress_bars(tmp_path):
    transcripts = load_transcripts()
    page = tmp_path / "page.md"
    page.write_text(f"<!-- transcript\necho {ROOT}/runs/x {ROOT.parent}/shared/y\necho '    features ━━━━━━ 598/598 168 img/s 0:00:00'\n-->\n```console\n```\nafter\n")
    (block,) = transcripts.find_blocks(page)
    transcripts.rewrite(page, {block.start: transcripts.run_block(block)})
    assert page.read_text().endswith("```console\n$ echo runs/x ../shared/y\nruns/x ../shared/y\n\n$ echo '    features ━━━━━━ 598/598 168 img/s 0:00:00'\n```\nafter\n")


@pytest.mark.slow
def test_quick_transcripts_match_what_the_commands_print():
    if not OXFORD_MINI.is_dir():
        pytest.skip(f"the quick transcripts run on the shared Oxford mini set, absent here ({OXFORD_MINI})")
    diffs = load_transcripts().stale(load_transcripts().default_files())
    assert not diffs, "stale transcripts; run `make transcripts` (or scripts/transcripts.py) and commit:\n\n" + "\n\n".join(diffs)


def test_every_transcript_marker_has_its_block():
    transcripts = load_transcripts()
    for path in transcripts.default_files():
        text = path.read_text(encoding="utf-8")
        shown = "".join(m.group(0) for m in transcripts.QUOTED.finditer(text))  # markers quoted as examples
        markers = len(re.findall(r"^<!--[ \t]*transcript", text, re.M)) - len(re.findall(r"^<!--[ \t]*transcript", shown, re.M))
        blocks = transcripts.find_blocks(path)
        assert len(blocks) == markers, f"{path.relative_to(ROOT)}: a transcript marker is not followed by a fenced block"
        assert all(block.text or block.slow for block in blocks), f"{path.relative_to(ROOT)}: an empty quick transcript; run scripts/transcripts.py"


def test_readme_lists_every_command_and_stays_short():
    import typer

    from transferlab.cli import app

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = sorted(typer.main.get_command(app).commands)
    missing = [name for name in commands if f"`transferlab {name}" not in readme]
    assert not missing, f"commands missing from the README's table: {missing}"
    assert len(readme.splitlines()) <= 250


def slug(heading: str) -> str:
    """The anchor MkDocs' toc extension gives a heading."""
    text = re.sub(r"[`*_\[\]()]", "", heading).strip().lower()
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", text))


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        path = ROOT / file
        if not path.exists():
            broken.append(target)
        elif anchor and anchor not in {slug(h) for h in re.findall(r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)}:
            broken.append(target)
    assert not broken, f"README links to missing files or headings: {broken}"


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path):
    """The README's Python block, as shown, from the repository root (it trains the tour's probe, attacks, exports)."""
    if not OXFORD_MINI.is_dir():
        pytest.skip(f"the README's example runs on the shared Oxford mini set, absent here ({OXFORD_MINI})")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    script = tmp_path / "readme_example.py"
    script.write_text(code + '\nassert run.record.metrics["accuracy"] > 0.9\n', encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (ROOT / "runs" / "pets" / "model.onnx").exists() and (ROOT / "runs" / "dog_as_bengal.png").exists()
