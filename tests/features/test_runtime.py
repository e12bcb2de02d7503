from pathlib import Path

import pytest
import torch

import transferlab.features.runtime as runtime_module
import transferlab.models.state as state
from transferlab.features.runtime import FREEZE_MIN_IMAGES, inference, optimize_for_inference, pick_runtime, single_threaded_ops
from transferlab.models import create_backbone

from ..conftest import TINY


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_frozen_graph_computes_what_the_module_computes(tiny_weights: Path, precision: str) -> None:
    extractor = create_backbone(TINY, weights=tiny_weights).model.feature_extractor()
    runtime = pick_runtime(precision=precision)
    x = torch.randint(0, 256, (5, 3, 96, 96), dtype=torch.uint8)
    fast = optimize_for_inference(extractor, runtime, x[:2], n_images=10 * FREEZE_MIN_IMAGES)
    assert isinstance(fast, torch.jit.ScriptModule)  # the speed-up is really in use
    with inference(runtime):
        got = fast(x.contiguous(memory_format=torch.channels_last)).float()  # another batch size than traced
        want = extractor(x).float()
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.99


def test_few_images_skip_the_tracing_cost(tiny_weights: Path) -> None:
    extractor = create_backbone(TINY, weights=tiny_weights).model.feature_extractor()
    fast = optimize_for_inference(extractor, pick_runtime(precision="fp32"), torch.zeros(2, 3, 64, 64, dtype=torch.uint8), n_images=3)
    assert not isinstance(fast, torch.jit.ScriptModule)


def test_single_threaded_ops_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with single_threaded_ops():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_intra_op_threads_sets_and_restores_any_count() -> None:
    from transferlab.features.runtime import intra_op_threads

    before = torch.get_num_threads()
    with intra_op_threads(before + 1):  # another count than the current one, on any machine
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with intra_op_threads(0):  # 0: leave torch's count alone
        assert torch.get_num_threads() == before


def test_precision_choices() -> None:
    assert pick_runtime(precision="fp32").dtype is None
    assert pick_runtime(device="cpu", precision="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        pick_runtime(precision="int4")


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(runtime_module, "cpu_has_bf16", lambda: native)
    assert pick_runtime(device="cpu").precision == ("bf16" if native else "fp32")  # emulated bf16 is ~10x slower


def _no_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool = False) -> None:
    monkeypatch.setattr(state, "bf16_available", lambda device: native)
    monkeypatch.setattr(state, "_warned", set())


def test_asking_for_emulated_bf16_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _no_native_bf16(monkeypatch)
    with caplog.at_level("WARNING", logger=state.__name__):
        assert pick_runtime(device="cpu", precision="bf16").precision == "bf16"  # the user's choice stands
        pick_runtime(device="cpu", precision="bf16")
        pick_runtime(device="cpu", precision="fp32")
        pick_runtime(device="cpu")
    assert len(caplog.records) == 1 and "10x slower than fp32" in caplog.text and "'auto' picks fp32" in caplog.text


def test_native_bf16_asked_for_does_not_warn(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _no_native_bf16(monkeypatch, native=True)
    with caplog.at_level("WARNING", logger=state.__name__):
        pick_runtime(device="cpu", precision="bf16")
    assert not caplog.records
