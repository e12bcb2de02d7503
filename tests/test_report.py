"""report.html: one self-contained file with every section, readable offline."""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import transferlab as tl
from transferlab.tasks.report import SECTIONS


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.srcs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag in ("img", "script") and "src" in a:
            self.srcs.append(a["src"])
        if tag == "link" and "href" in a:
            self.links.append(a["href"])


def test_report_has_every_section_and_needs_no_network(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tl.load(tiny_run_dir)
    path = tl.report(run, tmp_path / "r.html", dream_steps=2, gradcam_samples=2)
    text = path.read_text()
    parsed = _Collect()
    parsed.feed(text)
    assert set(SECTIONS) <= set(parsed.ids)
    assert parsed.srcs and all(s.startswith("data:image/") for s in parsed.srcs)  # embedded, nothing fetched
    assert not parsed.links and not re.search(r"https?://", text)
    assert "broken.jpg" in text  # the skipped file is listed with its reason
    assert all(c in text for c in run.classes)
    gradcam = text.split('id="gradcam"')[1].split("<section")[0]
    assert gradcam.count("<img") >= 2
    adversarial = text.split('id="adversarial"')[1].split("<section")[0]
    assert adversarial.count("<img") == 1 and "4/255" in adversarial


def test_report_of_a_backbone_says_what_is_missing(tmp_path: Path, tiny_weights: Path) -> None:
    from .conftest import TINY

    run = tl.open_model(TINY, tiny_weights)
    with pytest.raises(tl.ConfigError, match="--out"):
        tl.report(run)
    text = tl.report(run, tmp_path / "r.html").read_text()
    assert "no data summary" in text and "No evaluation recorded" in text


def test_cli_report_writes_into_the_run_folder(capsys, monkeypatch, tiny_run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from transferlab.cli import main

    run_dir = shutil.copytree(tiny_run_dir, tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["transferlab", "report", str(run_dir), "-q", "--gradcam", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0 and (run_dir / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_report_shows_the_audit_of_the_runs_data(tiny_run_dir: Path, tmp_path: Path, tiny_weights: Path) -> None:
    from .conftest import TINY

    run = tl.load(tiny_run_dir)
    assert 'id="audit"' not in tl.report(run, tmp_path / "before.html", gradcam_samples=0).read_text()  # no audit, no section
    tl.audit(tl.load_dataset(run.record.data["root"]), TINY, weights=tiny_weights, precision="fp32")
    text = tl.report(run, tmp_path / "after.html", gradcam_samples=0).read_text()
    audit = text.split('id="audit"')[1].split('<section id="curves"')[0]
    assert all(f"id='{k}'" in audit for k in ("duplicates", "labels", "outliers", "balance")) and "Audit of 30 images" in audit
    assert '<a href="#audit">' in text
