"""The run record and the training config: typed fields, every earlier shape read, and no module but the record
and the store reading ``model.json``'s fields by name."""

import re
from pathlib import Path

import pytest

import transferlab as tl
from transferlab.run.config import TrainConfig
from transferlab.run.record import BackboneInfo, DataInfo, FinetuneOutcome, RunRecord, ServeSettings, Timing

from ..conftest import TINY, train_tiny

SRC = Path(__file__).resolve().parents[2] / "src" / "transferlab"
# ``run.meta[...]``, ``meta.get(...)``, ``record.backbone.get(...)``, ``meta["data"]``: what reading the run's
# metadata by string keys looks like; only the record and the store may
STRING_READS = re.compile(r"""\.meta\b|\bmeta(\.get\(|\[)|record\.(backbone|data|timing|finetune|hyperparameters|serve)(\.get\(|\[)|\[["'](backbone|hyperparameters|timing|finetune)["']\]""")
ALLOWED = {"run/record.py", "run/store.py"}


def test_only_the_record_and_the_store_read_the_runs_metadata_by_string_keys() -> None:
    found = [f"{p.relative_to(SRC)}:{i}: {line.strip()}" for p in sorted(SRC.rglob("*.py")) if str(p.relative_to(SRC)) not in ALLOWED
             for i, line in enumerate(p.read_text().splitlines(), 1) if STRING_READS.search(line)]
    assert not found, found


def test_the_check_finds_a_string_key_read() -> None:
    assert STRING_READS.search('name = run.meta["backbone"]["name"]') and STRING_READS.search("run.record.backbone.get('name')")
    assert not STRING_READS.search("run.record.backbone.name")


def test_a_record_round_trips_through_its_json_and_reads_as_0_1_did() -> None:
    record = RunRecord(
        backbone=BackboneInfo("efficientnet_lite0", "efficientnet_lite0", None, "abc", "pooled"), strategy="finetune", kept="probe",
        config=TrainConfig(strategy="finetune", budget="5m"), data=DataInfo(root="/data/photos", layout="folder", counts={"cat": {"train": 3}}),
        timing=Timing(features_s=1.5), finetune=FinetuneOutcome(history=[{"epoch": 0, "val_accuracy": 0.5}], best_epoch=0, interrupted=True),
        serve=ServeSettings(unsure_below=0.7), extra={"future_field": 1},
    )
    again = RunRecord.from_dict(record.to_dict())
    assert again.to_dict() == record.to_dict()
    assert again.config == record.config and again.config.budget == 300.0 and again.unsure_below == 0.7
    assert again.finetune.interrupted and again.finetune["history"][0]["epoch"] == 0  # typed, and a mapping as in 0.1
    assert again.data.counts == {"cat": {"train": 3}} and again.data.get("layout") == "folder" and again.extra == {"future_field": 1}
    assert again.timing.features_s == 1.5 and "total_s" not in again.timing


def test_a_record_from_before_the_saved_config_rebuilds_it() -> None:
    old = RunRecord.from_dict({"backbone": {"name": "efficientnet_lite1", "arch": "efficientnet_lite1"}, "strategy": "auto", "record_version": 3,
                               "hyperparameters": {"l2_grid": [1.0, 0.1], "val_frac": 0.3, "seed": 4, "chosen_l2": 0.1, "batch_size": 8, "budget_s": 60.0,
                                                   "finetune": {"epochs": 2}}})
    config = old.train_config
    assert (config.backbone, config.strategy, config.seed, config.batch_size, config.budget) == ("efficientnet_lite1", "auto", 4, 8, 60.0)
    assert config.probe.l2_grid == (1.0, 0.1) and config.probe.val_frac == 0.3 and config.finetune.epochs == 2
    assert config.finetune.ema_epochs == 0.0  # what runs did before the weight average existed
    assert old.chosen_l2 == 0.1 and old.record_version == 3


def test_train_config_refuses_what_it_cannot_do_in_one_line() -> None:
    with pytest.raises(tl.ConfigError, match="expected strategy in probe, finetune, auto"):
        TrainConfig(strategy="fast")
    with pytest.raises(tl.ConfigError, match="expected a time budget such as 90s"):
        TrainConfig(budget="soon")
    with pytest.raises(tl.ConfigError, match="unknown training setting.*epochz"):
        TrainConfig().replace(epochz=3)
    assert TrainConfig(budget="1.5h").budget == 5400.0 and TrainConfig(weights=Path("w.pt")).weights == "w.pt"


def test_the_run_keeps_its_config_and_train_takes_settings_by_name(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    run = train_tiny(photo_folder, tiny_weights, tmp_path / "run")
    saved = tl.load(tmp_path / "run").record
    assert saved.config == run.record.config and saved.config.backbone == TINY and saved.config.precision == "fp32"
    assert saved.record_version == 4 and saved.data.root == str(photo_folder)
    with pytest.raises(tl.ConfigError, match="unknown training setting"):
        tl.train(tl.load_dataset(photo_folder), backbone=TINY, weights=tiny_weights, epochs=3)
