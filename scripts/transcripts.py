"""Rewrite the shell transcripts in README.md and docs/ by running their commands.

A transcript is a marker comment followed by a fenced block, whose contents this script owns:

    <!-- transcript: transferlab check ../shared/data/oxford-iiit-pet-mini -->
    ```console
    $ transferlab check ../shared/data/oxford-iiit-pet-mini
    ...what it printed...
    ```

Several commands, one a line, run in one bash process from the repository root (so `&`, `$!` and `cd` carry
over); a line starting with `hidden:` runs without being shown (start a server, wait for it, stop it):

    <!-- transcript slow
    hidden: transferlab serve runs/pets & sleep 10
    curl -s http://127.0.0.1:8000/health
    hidden: kill $!
    -->

`transcript:` blocks are quick (help texts, `check`, a probe on the mini set, predict): tests/test_docs.py re-runs
them and fails when the committed text differs (timings and feature counts aside, see `normalise`).
`transcript slow` blocks (fine-tuning, attacks, serving) are re-run only with `--slow` (`make transcripts`) and
carry the date they were recorded. Output is stored as a reader would see it in a terminal 100 columns wide,
with progress bars dropped and this machine's absolute paths made relative to the repository root.

Usage: python scripts/transcripts.py [--slow] [--check] [-k TEXT] [FILE ...]   (default: README.md and docs/**/*.md)
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(
    r"^<!--[ \t]*transcript(?P<slow>[ \t]+slow)?(?:[ \t]*:[ \t]*(?P<one>[^\n]*?)[ \t]*-->|[ \t]*\n(?P<many>.*?)\n[ \t]*-->)"
    r"(?P<gap>[ \t]*\n)(?P<fence>```[^\n]*\n```(?=\n|$)|```[^\n]*\n.*?\n```(?=\n|$))?",  # an empty fence first
    re.S | re.M,
)
QUOTED = re.compile(r"^````[^\n]*\n.*?^````", re.S | re.M)
PROGRESS = re.compile(r"^\s*[\w -]+ [━╸╺]+ .*$")  # a rich progress bar: "    features ━━━━━ 598/598 168 img/s 0:00:00"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SENTINEL = "@@transcript-step-5f3a@@"  # printed between two commands' outputs
TIMEOUT_S = 1800


@dataclass
class Block:
    """One marked transcript: where its fenced block is, its commands and what is committed now."""

    path: Path
    start: int  # offset of the marker in the file
    end: int  # offset just after its fenced block (or the marker when there is none yet)
    commands: list[str]  # as written, `hidden:` prefix kept
    slow: bool
    text: str  # the fenced block's contents now (without the fences)
    lang: str

    @property
    def shown(self) -> list[str]:
        return [c for c in self.commands if not c.startswith("hidden:")]


def shown_name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def default_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def find_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    quoted = [m.span() for m in QUOTED.finditer(text)]
    blocks = []
    for m in MARKER.finditer(text):
        if any(a <= m.start() < b for a, b in quoted):
            continue  # an example of a marker, shown inside a four-backtick fence
        lines = [m["one"]] if m["one"] is not None else m["many"].splitlines()
        commands = [line.strip() for line in lines if line.strip()]
        fence = m["fence"] or ""
        head, _, rest = fence.partition("\n")
        body = rest[: -len("```")].rstrip("\n") if fence else ""
        blocks.append(Block(path, m.start(), m.end(), commands, bool(m["slow"]), body, head[3:] or "console"))
    return blocks


def relative_paths(text: str) -> str:
    """This machine's absolute paths as a reader's: the repository root is `.`, its parent `..`, home `~`."""
    for root in {str(ROOT), os.path.realpath(ROOT)}:
        text = text.replace(root + "/", "").replace(root, ".")
    shared = os.path.realpath(ROOT.parent / "shared")  # the shared data may be a link to a folder elsewhere
    text = text.replace(shared + "/", "../shared/")
    for parent in {str(ROOT.parent), os.path.realpath(ROOT.parent)}:
        text = text.replace(parent + "/", "../")
    return text.replace(str(Path.home()) + "/", "~/")


def run_block(block: Block) -> str:
    """Run the block's commands in one bash from the repository root; return the transcript text.

    A block whose commands an earlier block of this process ran already gets that transcript (pages repeat
    the tour's commands)."""
    key = (tuple(block.commands), block.slow)
    if key not in _ran:
        _ran[key] = _run(block)
    return _ran[key]


_ran: dict[tuple[tuple[str, ...], bool], str] = {}


def _run(block: Block) -> str:
    script = []
    for command in block.commands:
        if command.startswith("hidden:"):
            script.append("{ " + command[len("hidden:"):].strip().rstrip(";") + "\n} >/dev/null 2>&1")
        else:
            script += [f"__rc=$?; printf '{SENTINEL}\\n'; (exit $__rc)", command]  # `echo $?` still sees the last command
    env = dict(os.environ, COLUMNS="100", LINES="50", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `transferlab` is the venv's
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    outputs = done.stdout.split(SENTINEL + "\n")[1:]  # stderr merged into stdout: the order a terminal shows
    if "Traceback (most recent call last)" in done.stdout:
        raise RuntimeError(f"{shown_name(block.path)}: `{block.shown[0]}` crashed:\n{done.stdout}")
    date = f"   # recorded {datetime.date.today().isoformat()}" if block.slow else ""
    parts = []
    for i, (command, output) in enumerate(zip(block.shown, outputs)):
        kept = [ANSI.sub("", line).rstrip() for line in output.splitlines() if not PROGRESS.match(ANSI.sub("", line))]
        parts.append("\n".join([f"$ {command}{date if i == 0 else ''}", *kept]).rstrip())
    return relative_paths("\n\n".join(parts))


def normalise(text: str) -> str:
    """What the stale check compares: timings, rates and cache hit counts vary from run to run."""
    text = re.sub(r"\d+(?:\.\d+)?\s?(?:ms|s|min|img/s)\b", "<time>", text)
    text = re.sub(r"\d+ computed", "<n> computed", text)
    text = re.sub(r'("\w+_s"|"images_computed"): [\d.]+', r"\1: <time>", text)  # --json's timing section
    text = re.sub(r"   # recorded \d{4}-\d\d-\d\d", "", text)
    # --json's full-precision floats: the float32 probe's last digits depend on the thread count (~1e-5)
    text = re.sub(r"(\d\.\d{4})\d{4,}", r"\1…", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def rewrite(path: Path, fresh: dict[int, str]) -> None:
    """Replace the fenced blocks of `path` whose marker offsets are in `fresh` with the new transcripts."""
    text = path.read_text(encoding="utf-8")
    for block in sorted(find_blocks(path), key=lambda b: -b.start):  # from the end: offsets stay valid
        if block.start in fresh:
            marker = MARKER.match(text, block.start)
            head = text[block.start : marker.end("gap")]
            text = text[: block.start] + head + f"```{block.lang}\n{fresh[block.start]}\n```" + ("" if block.text or text[block.end - 4 : block.end] == "\n```" else "\n") + text[block.end :]
    path.write_text(text, encoding="utf-8")


def stale(files: list[Path]) -> list[str]:
    """Re-run every quick transcript; return a unified diff for each one whose committed text differs."""
    diffs = []
    for path in files:
        for block in find_blocks(path):
            if block.slow:
                continue
            new, old = normalise(run_block(block)), normalise(block.text)
            if new != old:
                name = f"{shown_name(path)}: {block.shown[0]}"
                diffs.append("\n".join(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{name} (committed)", f"{name} (fresh)", lineterm="")))
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--slow", action="store_true", help="also re-run the slow transcripts (and date them)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a quick transcript is stale")
    parser.add_argument("-k", dest="pattern", help="only the transcripts whose commands contain this text")
    args = parser.parse_args()
    files = [f.resolve() for f in args.files] or default_files()
    if args.check:
        diffs = stale(files)
        print("\n\n".join(diffs) if diffs else "every quick transcript is up to date")
        return 1 if diffs else 0
    for path in files:
        fresh = {}
        for block in find_blocks(path):
            if (block.slow and not args.slow) or (args.pattern and args.pattern not in "\n".join(block.commands)):
                continue
            print(f"{shown_name(path)}: {' ; '.join(block.shown)}", flush=True)
            new = run_block(block)
            if block.slow or normalise(new) != normalise(block.text):  # timings alone do not churn the pages
                fresh[block.start] = new
        if fresh:
            rewrite(path, fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
