from pathlib import Path

import pytest
import timm
import torch

from transferlab.errors import BackboneError
from transferlab.models import create_backbone, read_state_dict

from ..conftest import TINY


def test_unknown_name_lists_close_names() -> None:
    with pytest.raises(BackboneError, match=r"unknown backbone 'resnet5O'.*did you mean.*resnet50"):
        create_backbone("resnet5O")


def test_non_bundled_backbone_offline_names_weights_flag() -> None:
    # conftest sets HF_HUB_OFFLINE=1, as for a user without internet
    with pytest.raises(BackboneError, match=r"no offline weights for 'resnet18'.*--weights"):
        create_backbone("resnet18")


def test_weights_file_safetensors_and_pth_give_the_same_network(tiny_weights: Path, tmp_path: Path) -> None:
    pth = tmp_path / "tiny.pth"
    torch.save({"state_dict": read_state_dict(tiny_weights)}, pth)  # wrapped, as training scripts often save
    a = create_backbone(TINY, weights=tiny_weights)
    b = create_backbone(TINY, weights=pth)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a.model.features(x), b.model.features(x))
    assert a.weights.startswith("file:") and a.model.backbone_fingerprint() == b.model.backbone_fingerprint()


def test_weights_with_another_head_keep_the_backbone(tmp_path: Path, tiny_weights: Path) -> None:
    other = timm.create_model(TINY, num_classes=7)
    other.load_state_dict({k: v for k, v in read_state_dict(tiny_weights).items() if not k.startswith("classifier")}, strict=False)
    path = tmp_path / "seven.pth"
    torch.save(other.state_dict(), path)
    bb = create_backbone(TINY, weights=path)
    assert bb.model.classes == [] and bb.model.backbone_fingerprint() == create_backbone(TINY, weights=tiny_weights).model.backbone_fingerprint()


def test_weights_of_another_architecture_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(BackboneError, match="do not fit"):
        create_backbone(TINY, weights=path)


def test_pickled_code_in_weights_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"w": Evil()}, path)
    with pytest.raises(BackboneError, match="cannot read weights"):
        create_backbone(TINY, weights=path)
    assert not marker.exists()


def test_missing_weights_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="does not exist"):
        create_backbone(TINY, weights=tmp_path / "nope.safetensors")


def test_fingerprint_ignores_the_head_but_not_the_backbone(tiny_weights: Path) -> None:
    bb = create_backbone(TINY, weights=tiny_weights)
    before = bb.model.backbone_fingerprint()
    bb.model.set_head(torch.zeros(2, bb.model.num_features), torch.zeros(2), ["a", "b"])
    assert bb.model.backbone_fingerprint() == before
    with torch.no_grad():
        next(bb.model.net.parameters()).add_(1)
    assert bb.model.backbone_fingerprint() != before


def test_offline_uses_weights_an_earlier_online_run_cached(tmp_path: Path, tiny_weights: Path, monkeypatch) -> None:
    # Hugging Face's cache layout: models--<org>--<name>/snapshots/<rev>/<file>, refs/main -> <rev>
    from huggingface_hub import constants

    repo = tmp_path / "models--timm--test_efficientnet.r160_in1k"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(tiny_weights.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    bb = create_backbone(TINY)
    assert bb.weights == f"hub-cache:{TINY}"
    assert bb.model.backbone_fingerprint() == create_backbone(TINY, weights=tiny_weights).model.backbone_fingerprint()


def test_online_download_failure_is_one_sentence(monkeypatch) -> None:
    from transferlab.models import backbones

    def refuse(*args, **kwargs):
        raise OSError("HTTP 503 from the hub")

    monkeypatch.setattr(backbones, "_hub_reachable", lambda: True)
    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(BackboneError, match=r"could not download weights for 'resnet18': HTTP 503.*--weights"):
        create_backbone("resnet18")
