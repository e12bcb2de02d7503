import dataclasses
import importlib
import itertools
import json
import math
from pathlib import Path

import pytest
import torch

import transferlab as tl
from transferlab.features import pick_runtime
from transferlab.models import create_backbone
from transferlab.train import FinetuneConfig, finetune
from transferlab.train.finetune import set_train_mode, check_config, frozen_modules, lr_lambda

from ..conftest import TINY

FAST = FinetuneConfig(epochs=3, batch_size=4, patience=5, lr=3e-3, warmup_epochs=0)


def _items(folder: Path) -> list[tuple[Path, int]]:
    return [(p, ["cat", "dog", "fox"].index(p.parent.name)) for p in sorted(folder.rglob("*.jpg"))]


def test_unfreezing_the_last_stages_freezes_the_rest_and_their_batchnorm(tiny_weights: Path) -> None:
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["a", "b", "c"])
    frozen = frozen_modules(model.net, "1")
    assert not model.net.conv_stem.weight.requires_grad and not model.net.blocks[0][0].conv.weight.requires_grad
    assert model.net.blocks[-1][-1].conv_pw.weight.requires_grad and model.head.weight.requires_grad
    set_train_mode(model, frozen, bn_stats="train")
    assert not model.net.bn1.training and model.net.blocks[-1][-1].bn1.training
    set_train_mode(model, frozen, bn_stats="frozen")  # the default: no BatchNorm statistics move
    assert model.training and not model.net.blocks[-1][-1].bn1.training
    assert frozen_modules(model.net, "all") == []


def test_schedule_warms_up_then_decays_to_zero() -> None:
    f = lr_lambda(FinetuneConfig(epochs=4, warmup_epochs=1), steps_per_epoch=10)
    warm = [f(s) for s in range(10)]
    assert warm == sorted(warm) and warm[-1] == 1.0 and warm[0] == pytest.approx(0.1)
    assert f(10) == pytest.approx(1.0) and f(39) < 0.01
    constant = lr_lambda(FinetuneConfig(epochs=4, warmup_epochs=1, schedule="constant"), 10)
    assert [constant(s) for s in range(10, 40)] == [1.0] * 30


def test_one_cycle_starts_low_peaks_after_warm_up_and_ends_near_zero() -> None:
    f = lr_lambda(FinetuneConfig(epochs=4, warmup_epochs=1, schedule="onecycle"), steps_per_epoch=10)
    values = [f(s) for s in range(40)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == values[10] == pytest.approx(1.0)
    assert values[:11] == sorted(values[:11]) and values[10:] == sorted(values[10:], reverse=True) and values[-1] < 1e-2


@pytest.mark.parametrize(("field", "value"), [("optimizer", "lion"), ("schedule", "step"), ("unfreeze", "-1"), ("bn_stats", "moving"), ("mix", "blend"), ("retry_lr", 1.0), ("judge", "oracle")])
def test_bad_settings_are_named(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        check_config(FinetuneConfig(**{field: value}))


def test_finetune_learns_keeps_the_best_epoch_and_checkpoints(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])  # an untrained head
    items = _items(photo_folder)
    result = finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), FAST, checkpoint=tmp_path / "ck.pt")
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3]
    assert result.history[result.best_epoch]["val_accuracy"] == max(r["val_accuracy"] for r in result.history[1:])
    assert max(r["val_accuracy"] for r in result.history[1:]) > result.history[0]["val_accuracy"]  # 1/3 with a zero head
    assert not model.training and model.head_dropout == 0.0 and all(p.requires_grad for p in model.parameters())
    saved = torch.load(tmp_path / "ck.pt", weights_only=True)  # no pickled code in our own checkpoints either
    assert saved["epoch"] == 3 and set(saved) >= {"model", "optimizer", "scheduler", "history", "config"}


def test_finetune_and_lr_find_leave_the_model_where_and_as_it_was(photo_folder: Path, tiny_weights: Path) -> None:
    """They train in channels_last on the runtime's device; the caller's model comes back in its own layout
    and device (on a GPU machine: a model on the CPU stays there, so a new head or a saved run is not split)."""
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    stem = model.net.conv_stem.weight
    before = stem.detach().clone()
    items = _items(photo_folder)
    runtime = pick_runtime(precision="fp32")
    from transferlab.train.lr_find import lr_find

    lr_find(model, items, runtime, FAST, steps=4)
    assert stem.is_contiguous() and stem.device == before.device and torch.equal(stem, before)
    finetune(model, items[::2], items[1::2], runtime, dataclasses.replace(FAST, epochs=1, min_win_rate=0.0))
    assert model.net.conv_stem.weight is stem and stem.is_contiguous()  # not left in channels_last
    assert not torch.equal(stem, before)  # holding the tuned weights


def test_a_new_head_and_the_weight_average_sit_on_the_network_s_device(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fitted head set on a network that lives elsewhere (a GPU; here the meta device stands in for one)
    joins it there, and so does the weight-averaged copy that validation judges, its normalising buffers too."""
    import copy
    import types

    import timm.utils

    from transferlab.train.finetune import _weight_average

    # timm's average cannot be built on the meta device (it makes a random generator there): a plain copy stands in
    monkeypatch.setattr(timm.utils, "ModelEmaV3", lambda net, decay: types.SimpleNamespace(module=copy.deepcopy(net)))
    model = create_backbone(TINY, weights=tiny_weights).model.to("meta")
    model.set_head(torch.ones(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
    _, judged = _weight_average(model, FAST, steps_per_epoch=2)
    assert {t.device.type for t in [*judged.parameters(), *judged.buffers()]} == {"meta"}


def test_train_finetune_writes_curves_and_reloads_identically(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    tuned = dataclasses.replace(FAST, min_win_rate=0.0)  # keep the best fine-tuned epoch even without a clear win
    run = tl.train(ds, TINY, "finetune", weights=tiny_weights, out=tmp_path / "run", precision="fp32", finetune_config=tuned)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"history.csv", "curves.png", "model.safetensors", "metrics.json"} <= files
    assert "checkpoint.pt" not in files and "checkpoint.prev.pt" not in files  # a finished run keeps no training state
    header, *rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert header.startswith("epoch,val_loss,val_accuracy") and len(rows) == 4
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["strategy"] == "finetune" and meta["finetune"]["best_epoch"] in (1, 2, 3)
    assert meta["backbone"]["fingerprint"] == run.model.backbone_fingerprint()  # features of the tuned network
    paths = sorted(photo_folder.rglob("*.jpg"))
    assert tl.load(tmp_path / "run").predict(paths, k=2) == run.predict(paths, k=2)
    # The final head refit touches the head only: same tuned backbone as without it, another head.
    assert meta["finetune"]["head_refit"] is True
    plain = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=dataclasses.replace(tuned, refit_head=False))
    assert plain.model.backbone_fingerprint() == run.model.backbone_fingerprint() and plain.meta["finetune"]["head_refit"] is False
    assert not torch.allclose(plain.model.head.weight, run.model.head.weight)


def test_layer_decay_really_scales_the_learning_rate_of_lower_stages(tiny_weights: Path) -> None:
    # regression: timm only records lr_scale; with torch's schedulers it was silently ignored
    from transferlab.train.finetune import make_optimizer

    net = create_backbone(TINY, weights=tiny_weights).model.net
    optimizer = make_optimizer(net, FinetuneConfig(layer_decay=0.5), lr=1e-3)
    lrs = sorted({round(group["lr"], 12) for group in optimizer.param_groups})
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] < 1e-4 and len(lrs) > 3
    assert make_optimizer(net, FinetuneConfig(layer_decay=1.0), lr=1e-3).param_groups[0]["lr"] == pytest.approx(1e-3)


def _assert_a_decade_below_the_blow_up(lrs: list[float], losses: list[float], suggestion: float) -> None:
    """What a user takes the suggestion for: a decade below the highest rate the loss tolerated (a rate it
    blew up at, or an arbitrary tiny rate, fails). "Tolerated": the smoothed loss stayed under twice its
    lowest value so far, the range test's own measure of blowing up."""
    lowest = [min(losses[: i + 1]) for i in range(len(losses))]
    tolerated = [lr for lr, _, _ in itertools.takewhile(lambda row: row[1] <= 2 * row[2], zip(lrs, losses, lowest))]
    step = lrs[1] / lrs[0]  # the sweep's ratio from one rate to the next
    assert lrs[0] <= suggestion and (suggestion == lrs[0] or 10 * suggestion <= tolerated[-1] * (1 + 1e-9))  # under a tolerated rate by 10x
    assert 10 * suggestion * step > tolerated[-1]  # ... and under the highest one, not anywhere lower


def test_lr_range_test_restores_the_model_and_suggests_a_decade_below_the_blow_up(photo_folder: Path, tiny_weights: Path) -> None:
    from transferlab.train.lr_find import lr_find, plot_lr_find

    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, _items(photo_folder), pick_runtime(precision="fp32"), FinetuneConfig(batch_size=4), steps=20)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no side effects
    assert not model.training
    assert result.lrs == sorted(result.lrs) and len(result.losses) == len(result.lrs) <= 20
    # A zero head starts at ln 3; rates up to ~1e-2 lower the loss, the sweep's last (1.0) blows it up.
    assert result.losses[0] == pytest.approx(math.log(3), abs=1e-3) and min(result.losses) < result.losses[0]
    assert result.losses[-1] > 2 * min(result.losses)  # it did diverge, so the check below has a blow-up to measure
    _assert_a_decade_below_the_blow_up(result.lrs, result.losses, result.suggestion)
    ax = plot_lr_find(result).axes[0]
    assert ax.get_xscale() == "log" and list(ax.lines[1].get_xdata()) == [result.suggestion] * 2  # the marked rate is the suggestion


def test_lr_find_command(capsys, monkeypatch, photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    from ..test_cli import cli

    code, out, _ = cli(capsys, monkeypatch, "lr-find", photo_folder, "-b", TINY, "--weights", tiny_weights, "--steps", "8", "--out", tmp_path / "lr.png", "--json")
    assert code == 0 and (tmp_path / "lr.png").stat().st_size > 0
    result = json.loads(out)
    assert len(result["lrs"]) == len(result["losses"]) <= 8 and result["lrs"][0] == pytest.approx(1e-7)
    _assert_a_decade_below_the_blow_up(result["lrs"], result["losses"], result["suggested_lr"])


def test_suggestion_is_a_decade_below_the_blow_up() -> None:
    from transferlab.train.lr_find import _suggest

    lrs = [10 ** (-7 + i / 4) for i in range(25)]  # 1e-7 .. 1e-1
    losses = [0.05] * 20 + [0.08, 0.2, 0.9, 3.0, 9.0]  # flat after the probe, then diverging at lrs[21]
    assert _suggest(lrs, losses) == pytest.approx(lrs[20] / 10)
    assert _suggest(lrs, [0.05] * 25) == pytest.approx(lrs[-1] / 10)  # never blew up


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "both"])
def test_mixup_and_cutmix_train_on_soft_labels(photo_folder: Path, tiny_weights: Path, mix: str) -> None:
    from transferlab.train.finetune import _mixer

    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    mixed, soft = _mixer(mix, 3)(x, y)
    assert soft.shape == (4, 3) and torch.allclose(soft.sum(1), torch.ones(4)) and mixed.min() >= 0 and mixed.max() <= 1
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    items = _items(photo_folder)
    result = finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), FinetuneConfig(epochs=1, batch_size=4, mix=mix))
    assert result.history[1]["train_loss"] > 0 and 0 <= result.history[1]["train_accuracy"] <= 1


def test_compile_option_compiles_the_training_forward(photo_folder: Path, tiny_weights: Path, monkeypatch) -> None:
    compiled = []

    def fake_compile(module):  # the real one takes ~50 s on this CPU; the wiring is what is tested
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    items = _items(photo_folder)
    finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), FinetuneConfig(epochs=1, batch_size=4, compile=True))
    assert compiled == [model]


def test_weight_average_is_what_validation_judges_and_the_run_keeps(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    items = _items(photo_folder)

    def tuned(ema_epochs: float) -> tuple[float, dict]:
        model = create_backbone(TINY, weights=tiny_weights).model
        model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
        start = {k: v.clone() for k, v in model.net.state_dict().items()}
        config = dataclasses.replace(FAST, epochs=1, ema_epochs=ema_epochs)
        finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), config, checkpoint=tmp_path / f"ema{ema_epochs}.pt")
        moved = max((v - start[k]).abs().max().item() for k, v in model.net.state_dict().items() if v.is_floating_point())
        return moved, torch.load(tmp_path / f"ema{ema_epochs}.pt", weights_only=True)

    raw, raw_ck = tuned(0.0)
    averaged, ema_ck = tuned(1e6)  # a horizon of a million epochs: the average stays at the start
    assert raw > 1e-3 and averaged < raw / 100
    assert raw_ck["ema"] is None and set(ema_ck["ema"]) == set(ema_ck["model"])  # resume continues the average
    with pytest.raises(ValueError, match="ema_epochs"):
        check_config(FinetuneConfig(ema_epochs=-1))


def test_validation_images_are_decoded_once_not_every_epoch(photo_folder: Path, tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    from transferlab.train import loader

    log = tmp_path / "opened.txt"
    real = loader.open_rgb

    def counting(path, **kw):  # runs in DataLoader worker processes: count through a file
        with open(log, "a") as f:
            f.write(f"{path}\n")
        return real(path, **kw)

    monkeypatch.setattr(loader, "open_rgb", counting)
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    items = _items(photo_folder)
    train, val = items[::2], items[1::2]
    finetune(model, train, val, pick_runtime(precision="fp32"), FAST)  # 3 epochs + the probe's epoch 0
    opened = log.read_text().splitlines()
    assert sorted(opened.count(str(p)) for p, _ in val) == [1] * len(val)
    assert max(opened.count(str(p)) for p, _ in train) == 3  # training images are augmented afresh each epoch


def test_when_validation_ranks_the_probe_first_the_run_keeps_the_probe(photo_folder: Path, tiny_weights: Path) -> None:
    # regression: the best epoch started empty, so epoch 1 always replaced the probe's epoch 0
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    wrecked = dataclasses.replace(FAST, epochs=2, lr=30.0)  # a learning rate that can only make things worse
    run = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=dataclasses.replace(wrecked, refit_head=False))
    history = run.record.finetune["history"]
    assert max(row["val_accuracy"] for row in history[1:]) < history[0]["val_accuracy"]
    assert run.record.finetune["best_epoch"] == 0 and run.record.kept == "probe" and "kept the probe" in run.record.decision
    pretrained = create_backbone(TINY, weights=tiny_weights).model.backbone_fingerprint()
    assert run.model.backbone_fingerprint() == pretrained  # the backbone is the untouched one the probe used


def test_a_tuned_epoch_must_win_clearly_to_replace_the_probe() -> None:
    from transferlab.train.finetune import win_rate

    probe = [(True, 0.1)] * 45 + [(False, 2.0)] * 5
    assert win_rate(probe, probe) == 0.0  # a tie is no win
    one_more = [(True, 0.1)] * 46 + [(False, 2.0)] * 4
    assert 0.3 < win_rate(probe, one_more) < 0.9  # one image of 50 is not clear evidence
    ten_more = [(True, 0.1)] * 50
    assert win_rate(probe, ten_more) > 0.99
    lower_loss = [(True, 0.05)] * 45 + [(False, 2.0)] * 5  # same accuracy: a lower loss is no win
    assert win_rate(probe, lower_loss) == 0.0


def test_auto_counts_patience_from_the_probe_while_the_probe_leads() -> None:
    from transferlab.train.finetune import _Best, _patience_from, _should_stop

    probe = {"val_accuracy": 0.90, "val_loss": 0.30}
    behind = _Best((0.85, -0.5), epoch=2)  # the best tuned epoch so far is worse than the probe
    assert _patience_from(behind, probe, probe_patience=False) == 2 and _patience_from(behind, probe, probe_patience=True) == 0
    assert _should_stop(3, 0, FinetuneConfig(epochs=6, patience=2)) and not _should_stop(3, 2, FinetuneConfig(epochs=6, patience=2))
    ahead = _Best((0.95, -0.2), epoch=2)
    assert _patience_from(ahead, probe, probe_patience=True) == 2
    # after starting again at epoch 1, both count from there, and the new schedule runs its full length
    assert _patience_from(behind, probe, probe_patience=True, start=1) == 1 and _patience_from(_Best((-1.0, 0.0)), probe, False, start=1) == 1
    assert not _should_stop(6, 5, FinetuneConfig(epochs=6, patience=2), start=1) and _should_stop(7, 5, FinetuneConfig(epochs=6, patience=2), start=1)


@pytest.mark.parametrize(("l2sp", "moved"), [(0.0, True), (1e6, False)])
def test_l2sp_pulls_the_backbone_back_to_its_pretrained_weights_but_not_the_head(photo_folder: Path, tiny_weights: Path, l2sp: float, moved: bool) -> None:
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])
    head = {id(p) for p in model.head.parameters()}
    before = {n: p.detach().clone() for n, p in model.net.named_parameters()}
    items = _items(photo_folder)
    config = dataclasses.replace(FAST, epochs=1, schedule="constant", ema_epochs=0, min_win_rate=0.0, l2sp=l2sp)  # keep the tuned epoch, whatever it scores
    finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), config)
    after = dict(model.net.named_parameters())
    backbone_moved = max(float((after[n].detach() - before[n]).abs().max()) for n in before if id(after[n]) not in head)
    assert (backbone_moved > 1e-4) == moved, backbone_moved
    assert any(not torch.equal(after[n], before[n]) for n in before if id(after[n]) in head)  # the head learns either way


def test_a_tuned_network_that_ends_clearly_below_the_probe_starts_again_at_a_lower_rate(tmp_path: Path, tiny_weights: Path) -> None:
    from ..conftest import make_photo_folder

    ds = tl.load_dataset(make_photo_folder(tmp_path / "photos", per_class=20), val_frac=0.3, test_frac=0.2)
    wrecking = dataclasses.replace(FAST, epochs=2, lr=30.0, ema_epochs=0, refit_head=False)  # the tuned network can only fall
    common = dict(backbone=TINY, strategy="finetune", weights=tiny_weights, precision="fp32")
    plain = tl.train(ds, **common, finetune_config=wrecking).record.finetune
    assert plain["retried_after"] == 0 and len(plain["history"]) == 3  # off: no second try

    retried = tl.train(ds, **common, finetune_config=dataclasses.replace(wrecking, retry_lr=1e-5), out=tmp_path / "run")
    tuned = retried.record.finetune
    history = tuned["history"]
    assert max(row["val_accuracy"] for row in history[1:3]) < history[0]["val_accuracy"] and tuned["retry_reason"] >= 0.9
    assert tuned["retried_after"] == 2 and tuned["retry_lr"] == pytest.approx(30.0 * 1e-5)
    assert len(history) == 1 + 2 + 2  # the failed schedule, then a full one of its own at the lower rate
    assert max(row["val_accuracy"] for row in history[3:]) > max(row["val_accuracy"] for row in history[1:3])  # a gentle rate keeps what the probe knew
    assert "after 2 epoch(s) its best was below the probe" in retried.record.decision and "started again from the probe at lr 0.0003" in retried.record.decision
    assert tuned["best_epoch"] in (0, 3, 4)  # never the wrecked first attempt


def test_a_run_that_started_again_resumes_at_the_lower_rate(tmp_path: Path, tiny_weights: Path) -> None:
    import copy

    from transferlab.train.checkpoint import load_checkpoint, previous_path

    from ..conftest import make_photo_folder

    folder = make_photo_folder(tmp_path / "photos", per_class=20)
    probe = tl.train(tl.load_dataset(folder), TINY, "probe", weights=tiny_weights, precision="fp32").model
    items = _items(folder)
    config = dataclasses.replace(FAST, epochs=2, lr=30.0, ema_epochs=0, retry_lr=1e-5)
    runtime = pick_runtime(precision="fp32")
    straight = finetune(copy.deepcopy(probe), items[::2], items[1::2], runtime, config, checkpoint=tmp_path / "ck.pt")
    assert straight.retried_after == 2 and [row["epoch"] for row in straight.history] == [0, 1, 2, 3, 4]
    after_epoch_3 = load_checkpoint(previous_path(tmp_path / "ck.pt"))
    assert after_epoch_3["epoch"] == 3 and after_epoch_3["retry"]["lr"] == pytest.approx(3e-4)
    resumed = finetune(copy.deepcopy(probe), items[::2], items[1::2], runtime, config, resume=after_epoch_3)
    assert (resumed.retried_after, resumed.retry_lr, resumed.best_epoch) == (straight.retried_after, straight.retry_lr, straight.best_epoch)
    assert [row["val_accuracy"] for row in resumed.history] == [row["val_accuracy"] for row in straight.history]
    assert resumed.history[4]["lr"] == pytest.approx(straight.history[4]["lr"])  # the resumed epoch ran at the lower rate


@pytest.mark.parametrize(("verdict", "kept_tuned"), [(True, True), (False, False)])
def test_the_keep_decision_compares_what_the_judge_scores(photo_folder: Path, tiny_weights: Path, verdict: bool, kept_tuned: bool) -> None:
    model = create_backbone(TINY, weights=tiny_weights).model
    model.set_head(torch.zeros(3, model.num_features), torch.zeros(3), ["cat", "dog", "fox"])  # the probe: a third right
    items = _items(photo_folder)
    judged = []

    def judge(m):  # e.g. the tuned network with a refitted head: here every image right, or every one wrong
        judged.append(m.training)
        return [(verdict, 0.0 if verdict else 5.0)] * len(items[1::2])

    result = finetune(model, items[::2], items[1::2], pick_runtime(precision="fp32"), dataclasses.replace(FAST, epochs=1), judge=judge)
    assert judged == [False] and result.judged_accuracy == float(verdict)
    assert (result.best_epoch > 0) == kept_tuned and result.win_rate == (1.0 if verdict else 0.0)
    assert result.head_win_rate is not None and 0.0 <= result.head_win_rate <= 1.0  # the own head's verdict, kept beside the judge's


def test_judging_with_a_refitted_head_is_said_and_recorded(photo_folder: Path, tiny_weights: Path) -> None:
    ds = tl.load_dataset(photo_folder, val_frac=0.3, test_frac=0.2)
    config = dataclasses.replace(FAST, epochs=1, judge="refit")
    run = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=config)
    assert 0.0 <= run.record.finetune["judged_accuracy"] <= 1.0 and "with its head refitted" in run.record.decision
    assert 0.0 <= run.record.finetune["head_win_rate"] <= 1.0 and "% with its own head)" in run.record.decision
    own_head = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=dataclasses.replace(config, judge="head"))
    assert own_head.record.finetune["judged_accuracy"] is None and "refitted" not in own_head.record.decision
    assert own_head.record.finetune["head_win_rate"] is None


def test_judge_auto_refits_the_head_only_from_enough_training_images(photo_folder: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    finetune_module = importlib.import_module("transferlab.train.finetune")  # (the package's ``finetune`` is the function)

    ds = tl.load_dataset(photo_folder, val_frac=0.3, test_frac=0.2)
    config = dataclasses.replace(FAST, epochs=1, judge="auto")
    few = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=config)
    assert few.record.finetune["judged_accuracy"] is None and "refitted" not in few.record.decision  # a handful of images: its own head
    monkeypatch.setattr(finetune_module, "JUDGE_REFIT_MIN_IMAGES", 2)
    enough = tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=config)
    assert enough.record.finetune["judged_accuracy"] is not None and "with its head refitted" in enough.record.decision
    with pytest.raises(tl.ConfigError, match="judge"):
        check_config(dataclasses.replace(config, judge="both"))


@pytest.mark.parametrize(("judged", "from_probe"), [(False, True), (True, False)])
def test_auto_counts_patience_from_the_probe_only_when_the_tuned_head_decides(monkeypatch: pytest.MonkeyPatch, judged: bool, from_probe: bool) -> None:
    from transferlab.run import steps
    from transferlab.run.config import TrainConfig

    seen = {}
    monkeypatch.setattr(steps, "finetune", lambda *a, **kw: seen.update(kw) or steps.FinetuneResult())
    judge = (lambda model: []) if judged else None
    setup = steps.Setup(TrainConfig(strategy="auto"), None, "", None, None, None, None)
    steps.run_finetune(setup, [], [], None, resume_from=None, checkpoint_extra={}, judge=judge)
    assert seen["probe_patience"] is from_probe  # a refitted judge may keep an epoch whose own head trailed the probe
