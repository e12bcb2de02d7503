"""The fine-tuning loop under `torchrun --nproc_per_node 2` (DDP, gloo on CPU) on a tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import TINY

SCRIPT = """
import sys
import torch.distributed as dist
import transferlab as tl
from transferlab.train import FinetuneConfig
ds = tl.load_dataset(sys.argv[1], val_frac=0.2, test_frac=0.3)
run = tl.train(ds, sys.argv[2], "finetune", weights=sys.argv[3], out=sys.argv[4], precision="fp32",
               finetune_config=FinetuneConfig(epochs=2, batch_size=4, lr=float(sys.argv[5]), warmup_epochs=0, patience=5, refit_head=sys.argv[6] == "refit", judge=sys.argv[6]))
print("rank", dist.get_rank(), "of", dist.get_world_size(), "history", len(run.meta["finetune"]["history"]), flush=True)
dist.destroy_process_group()
"""


def _torchrun(photo_folder: Path, tiny_weights: Path, out: Path, lr: str, judge: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1"}
    # --standalone: the launcher's rendezvous store binds localhost:0 and the workers share it, so no port is
    # picked free and bound later (another process could take it in between)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python", sys.executable, "-c", SCRIPT,
           str(photo_folder), TINY, str(tiny_weights), str(out), lr, judge]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_cpu_processes_train_together_and_only_rank_0_writes(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    lr = "30"  # a learning rate that can only make things worse: validation must rank the probe (epoch 0) first
    done = _torchrun(photo_folder, tiny_weights, out, lr, "head")
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("rank")) == ["rank 0 of 2 history 3", "rank 1 of 2 history 3"]
    meta = json.loads((out / "model.json").read_text())
    history = meta["finetune"]["history"]
    n_train = sum(c["train"] for c in meta["data"]["counts"].values())
    # metrics are reduced over both ranks, and every training image counts in every epoch
    assert all(row["train_images"] >= n_train for row in history[1:])
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "history.csv", "metrics.json"}
    # regression: epoch 1 always replaced the probe's epoch 0, even when validation ranked epoch 0 first
    assert max(row["val_accuracy"] for row in history[1:]) < history[0]["val_accuracy"]
    assert meta["finetune"]["best_epoch"] == 0 and meta["kept"] == "probe"
    from transferlab.models import create_backbone

    assert meta["backbone"]["fingerprint"] == create_backbone(TINY, weights=tiny_weights).model.backbone_fingerprint()


def test_the_refitted_head_judges_the_tuned_network_under_torchrun(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _torchrun(photo_folder, tiny_weights, out, "3e-3", "refit")
    meta = json.loads((out / "model.json").read_text())
    finetune = meta["finetune"]
    assert finetune["judged_accuracy"] is not None and "with its head refitted" in meta["decision"]
    assert meta["kept"] == ("finetune" if finetune["win_rate"] >= 0.9 else "probe")  # the kept model follows its verdict
