"""The folder ``predict --ray`` writes, without Ray: blocks named the same on every run, parts trusted only
when whole and of their own files, rows read back in the order of the files, another job's folder refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import transferlab as tl

pa = pytest.importorskip("pyarrow", reason="pyarrow comes with ray[data]")
pq = pytest.importorskip("pyarrow.parquet")

from transferlab.cluster.dataset import Job, PartFolder, plan_parts, write_part  # noqa: E402

FILES = [f"photos/{i:02d}.jpg" for i in range(10)]


def job(k: int = 2, files: list[str] = FILES) -> Job:
    return Job.of(files, 4, k, ["path", "label", "error"], model="m", precision="fp32")


def rows_of(files: tuple[str, ...], errors: dict[str, str] | None = None):
    errors = errors or {}
    schema = pa.schema([("path", pa.string()), ("label", pa.string()), ("error", pa.string())])
    return pa.table({"path": list(files), "label": [None if f in errors else "cat" for f in files], "error": [errors.get(f) for f in files]}, schema=schema)


def test_the_same_files_make_the_same_parts_and_one_changed_file_renames_only_its_block() -> None:
    parts = plan_parts(FILES, 4)
    assert [len(p.files) for p in parts] == [4, 4, 2] and plan_parts(list(FILES), 4) == parts
    changed = plan_parts([*FILES[:5], "photos/new.jpg", *FILES[6:]], 4)
    assert [a.name == b.name for a, b in zip(parts, changed)] == [True, False, True]
    assert [p.name for p in parts] == sorted(p.name for p in parts)  # names sort in the order of the files
    with pytest.raises(tl.ConfigError, match="--part-size"):
        plan_parts(FILES, 0)


def test_parts_written_in_any_order_read_back_in_file_order_and_only_whole_parts_of_their_files_count(tmp_path: Path) -> None:
    folder = PartFolder(tmp_path / "out", job())
    parts = plan_parts(FILES, 4)
    assert folder.done(parts[0]) is None  # not written yet
    folder.write_manifest(parts)
    for part in reversed(parts):  # workers finish in any order
        write_part(folder.path / part.name, rows_of(part.files, {"photos/05.jpg": "empty file (0 bytes)"}))
    (folder.path / f".{parts[0].name}.0123.tmp").write_bytes(b"PAR1 half a part")  # a writer killed mid-part
    assert pq.read_table(folder.path).column("path").to_pylist() == FILES  # the manifest and the temporary file are skipped
    assert folder.done(parts[1]) == (4, {"photos/05.jpg": "empty file (0 bytes)"})
    write_part(folder.path / parts[2].name, rows_of(("photos/08.jpg",)))  # a part that lacks a file of its block
    assert folder.done(parts[2]) is None
    (folder.path / parts[0].name).write_bytes(b"PAR1 damaged")
    assert folder.done(parts[0]) is None
    folder.write_manifest(parts, rows=10, failed=1)
    assert not list(folder.path.glob(".*.tmp"))  # cleaned once the job is complete


def test_a_folder_of_another_job_or_not_a_prediction_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    PartFolder(tmp_path / "out", job()).write_manifest(plan_parts(FILES, 4))
    PartFolder(tmp_path / "out", job())  # the same job: resumed
    for other, word in ((job(k=3), "-k"), (job(files=FILES[:9]), "files")):
        with pytest.raises(tl.ConfigError, match=f"another job \\(its {word} differ\\)"):
            PartFolder(tmp_path / "out", other)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "table.parquet").write_bytes(b"PAR1")
    for path in (tmp_path / "mine", tmp_path / "table.parquet", tmp_path / "p.csv"):
        with pytest.raises(tl.ConfigError) as err:
            PartFolder(path, job())
        assert "\n" not in str(err.value)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
