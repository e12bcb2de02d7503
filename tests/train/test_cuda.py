"""Training on a GPU: skipped where there is none (CI, this project's machines); run on a lent GPU machine.

The first GPU run of ``transferlab train --strategy finetune`` stopped at its first validation pass (the
weight-averaged copy kept its normalising buffers on the CPU), and the second left BatchNorm statistics on the GPU
after training (buffers are replaced, not moved, by ``Module.to``): these cover the steps a GPU run takes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import transferlab as tl
from transferlab.features import pick_runtime
from transferlab.models import create_backbone
from transferlab.train import FinetuneConfig
from transferlab.train.lr_find import lr_find

from ..conftest import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; run on a GPU machine)")

QUICK = FinetuneConfig(epochs=2, batch_size=4, warmup_epochs=0, min_win_rate=0.0)  # keep a tuned epoch: the whole path runs


@pytest.mark.parametrize("strategy", ["finetune", "auto"])
def test_training_on_the_gpu_saves_a_run_that_reloads_and_predicts_the_same(photo_folder: Path, tiny_weights: Path, tmp_path: Path, strategy: str) -> None:
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    run = tl.train(ds, TINY, strategy, weights=tiny_weights, out=tmp_path / "run", finetune_config=QUICK)
    assert run.meta["hyperparameters"]["precision"] == "bf16" and run.meta["metrics"]["split"] == "test"
    assert run.meta["finetune"] is not None and run.meta["kept"] == "finetune"
    assert {t.device.type for t in [*run.model.parameters(), *run.model.buffers()]} == {"cpu"}  # back where it was made
    paths = sorted(photo_folder.rglob("*.jpg"))
    again = tl.load(tmp_path / "run").predict(paths, k=2)
    assert [p["label"] for p in again] == [p["label"] for p in run.predict(paths, k=2)]


def test_the_judge_with_a_refitted_head_and_the_lr_range_test_run_on_the_gpu(photo_folder: Path, tiny_weights: Path) -> None:
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    run = tl.train(ds, TINY, "finetune", weights=tiny_weights, finetune_config=dataclasses.replace(QUICK, judge="refit"))
    assert run.meta["finetune"]["judged_accuracy"] is not None and 0.0 <= run.meta["finetune"]["win_rate"] <= 1.0
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    found = lr_find(model, [(p, ["cat", "dog", "fox"].index(p.parent.name)) for p in sorted(photo_folder.rglob("*.jpg"))], pick_runtime(), QUICK, steps=6)
    assert len(found.lrs) == 6 and {p.device.type for p in model.parameters()} == {"cpu"}
