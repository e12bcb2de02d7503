"""The attack methods: the budget and the pixel range hold exactly, both modes reach their goal, early
stopping stops, the model comes back as it was, and normalisation stays inside the model."""

from __future__ import annotations

import math

import pytest
import torch

import transferlab.models.state as state
from transferlab.attacks import BIM, FGSM, PGD, AttackConfig, margins
from transferlab.errors import ConfigError

from .conftest import grid_images, tiny_classifier

METHODS = [
    pytest.param(lambda m, eps, norm, **kw: FGSM(m, eps, norm=norm, **kw), id="fgsm"),
    pytest.param(lambda m, eps, norm, **kw: BIM(m, eps, steps=5, norm=norm, **kw), id="bim"),
    pytest.param(lambda m, eps, norm, **kw: PGD(m, eps, steps=5, norm=norm, **kw), id="pgd"),
]


def predicted(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize("make", METHODS)
@pytest.mark.parametrize("eps", [3 / 255, 0.01])  # on and off the 8-bit grid
@pytest.mark.parametrize("quantize", [True, False])
def test_linf_ball_and_pixel_range_hold_exactly(model, images, make, eps: float, quantize: bool) -> None:
    # confidence high: no early stop, so every image takes every step and pushes against the ball
    result = make(model, eps, "Linf", confidence=1e9, quantize=quantize, precision="fp32")(images, predicted(model, images))
    adv = result.images
    assert adv.min() >= 0 and adv.max() <= 1
    if quantize:  # exact in 8-bit levels: the PNG holds these values
        levels = adv * 255
        assert torch.equal(levels, levels.round())
        assert (levels.round() - (images * 255).round()).abs().max() <= math.floor(eps * 255 + 1e-9)
    else:
        assert (adv - images).abs().max() <= eps  # fp32, no tolerance
        assert (adv - images).abs().max() > eps * 0.99  # the attack used its budget


@pytest.mark.parametrize("make", METHODS)
@pytest.mark.parametrize("quantize", [True, False])
def test_l2_ball_and_pixel_range_hold(model, images, make, quantize: bool) -> None:
    eps = 0.5
    result = make(model, eps, "L2", confidence=1e9, quantize=quantize, precision="fp32")(images, predicted(model, images))
    adv = result.images
    assert adv.min() >= 0 and adv.max() <= 1
    norms = (adv.double() - images.double()).flatten(1).norm(dim=1)
    assert (norms <= eps).all() and norms.max() > 0.5 * eps
    if quantize:
        assert torch.equal(adv * 255, (adv * 255).round())


def test_untargeted_leaves_the_label_and_targeted_reaches_the_target(model, images) -> None:
    labels = predicted(model, images)
    away = PGD(model, 16 / 255, steps=20)(images, labels)
    assert away.success.all() and (predicted(model, away.images) != labels).all()
    target = (labels + 1) % 3
    towards = PGD(model, 16 / 255, steps=20, targeted=True)(images, target)
    assert towards.success.all() and torch.equal(predicted(model, towards.images), target)
    # the reported logits are those of the returned pixels, in fp32
    with torch.no_grad():
        torch.testing.assert_close(towards.logits, model(towards.images), rtol=1e-4, atol=1e-4)


def test_targeted_and_untargeted_losses_pull_opposite_ways(model, images) -> None:
    labels = predicted(model, images)
    before = margins(model(images).detach(), labels, targeted=True)
    # targeted at the current class raises its margin, untargeted (away from it) lowers it
    up = PGD(model, 4 / 255, steps=3, targeted=True, confidence=1e9, precision="fp32")(images, labels)
    down = PGD(model, 4 / 255, steps=3, confidence=1e9, precision="fp32")(images, labels)
    assert (margins(up.logits, labels, True) > before).float().mean() >= 0.9
    assert (margins(down.logits, labels, True) < before).float().mean() >= 0.9


def test_early_stop_on_confidence_margin(model, images) -> None:
    labels = predicted(model, images)
    quick = PGD(model, 16 / 255, steps=20, random_start=False)(images, labels)
    assert quick.success.all() and quick.steps.max() < 20
    sure = PGD(model, 16 / 255, steps=20, random_start=False, confidence=2.0)(images, labels)
    won = sure.success & (margins(sure.logits, labels, False) >= 2.0)
    assert won.float().mean() >= 0.9 and (sure.steps >= quick.steps).all()


def test_already_adversarial_images_take_no_step(model, images) -> None:
    labels = predicted(model, images)
    result = PGD(model, 4 / 255, random_start=False, targeted=True)(images, labels)  # the target is the prediction
    assert result.success.all() and (result.steps == 0).all() and torch.equal(result.images, images)


def test_bf16_gradients_keep_the_exact_fp32_projection(model, images) -> None:
    result = PGD(model, 3 / 255, steps=4, confidence=1e9, precision="bf16")(images, predicted(model, images))
    assert result.images.dtype == torch.float32
    assert (result.images * 255 - (images * 255)).round().abs().max() <= 3
    with torch.no_grad():  # success is judged in fp32 on the returned pixels
        torch.testing.assert_close(result.logits, model(result.images), rtol=1e-4, atol=1e-4)


def test_model_state_is_restored(model, images) -> None:
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    PGD(model, 4 / 255, steps=2, precision="bf16")(images, 0)  # bf16 also switches to channels_last
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    conv = next(p for p in model.parameters() if p.ndim == 4)
    assert conv.is_contiguous()


def test_model_state_is_restored_when_the_attack_fails(model, images, monkeypatch) -> None:
    model.train()

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(PGD, "step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        PGD(model, 4 / 255, steps=2, random_start=False)(images, predicted(model, images) + 0)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_normalisation_with_non_default_mean_std_stays_inside_the_model(images) -> None:
    # a model normalising with unusual statistics: the budget is still in [0, 1] pixel units, and
    # attacking it equals attacking the same network behind an explicit normalisation layer
    mean, std = (0.9, 0.1, 0.5), (0.05, 0.5, 0.2)
    wrapped = tiny_classifier(mean=mean, std=std)
    explicit = torch.nn.Sequential(wrapped.normalize, _Logits(wrapped)).eval()
    labels = predicted(wrapped, images)
    ours = PGD(wrapped, 4 / 255, steps=5, precision="fp32", confidence=1e9)(images, labels)
    ref = PGD(explicit, 4 / 255, steps=5, precision="fp32", confidence=1e9)(images, labels)
    assert torch.equal(ours.images, ref.images)
    assert ((ours.images - images) * 255).round().abs().max() == 4  # pixel units, not normalised units
    default = tiny_classifier()
    other = PGD(default, 4 / 255, steps=5, precision="fp32", confidence=1e9)(images, labels)
    assert not torch.equal(other.images, ours.images)  # the statistics matter: they are applied


class _Logits(torch.nn.Module):
    """The classifier's network and head without its normalisation (input: normalised)."""

    def __init__(self, clf) -> None:
        super().__init__()
        self.net = clf.net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def test_random_start_is_seeded(model, images) -> None:
    labels = predicted(model, images)
    a = PGD(model, 8 / 255, steps=1, seed=3, confidence=1e9, precision="fp32")(images, labels).images
    b = PGD(model, 8 / 255, steps=1, seed=3, confidence=1e9, precision="fp32")(images, labels).images
    c = PGD(model, 8 / 255, steps=1, seed=4, confidence=1e9, precision="fp32")(images, labels).images
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: PGD(m, 4 / 255)(x * 0.999, 0), "8-bit grid"),
        (lambda m, x: PGD(m, 4 / 255)(x * 2, 0), "pixels in [0, 1]"),
        (lambda m, x: PGD(m, 4 / 255)(x[0], 0), "(B, 3, H, W)"),
        (lambda m, x: PGD(m, 4 / 255)(x, torch.zeros(3, dtype=torch.long)), "one label per image"),
        (lambda m, x: PGD(m, 4 / 255, norm="L1"), "expected norm"),
        (lambda m, x: AttackConfig(method="cw"), "expected method"),
    ],
)
def test_bad_inputs_are_config_errors(model, images, call, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        call(model, images)


def test_quantize_off_accepts_any_float_image(model) -> None:
    x = torch.rand(2, 3, 32, 32)
    result = PGD(model, 4 / 255, steps=2, quantize=False, precision="fp32")(x, 0)
    assert (result.images - x).abs().max() <= 4 / 255


def test_uint8_images_are_pixels_too(model) -> None:
    x = grid_images(2)
    a = BIM(model, 4 / 255, steps=2, precision="fp32", confidence=1e9)(x, 1).images
    b = BIM(model, 4 / 255, steps=2, precision="fp32", confidence=1e9)((x * 255).round().to(torch.uint8), 1).images
    assert torch.equal(a, b)


def test_an_attack_asked_for_emulated_bf16_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(state, "bf16_available", lambda device: False)  # a CPU without native bf16
    monkeypatch.setattr(state, "_warned", set())
    with caplog.at_level("WARNING", logger=state.__name__):
        FGSM(tiny_classifier(), eps=1 / 255, precision="bf16")(grid_images(1), 0)
    assert "bf16 runs emulated" in caplog.text
