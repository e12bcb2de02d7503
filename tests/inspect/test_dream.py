"""Ideal class images: parameterisations, objectives, the loop, and the PNG round trip (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import transferlab as tl
from transferlab.errors import ConfigError
from transferlab.inspect.dream import (
    DreamConfig, FFTParam, PixelParam, Step, class_logit, class_probabilities, dream, frame_steps, l2, make_param,
    png_round_trip, standard_transforms, total_variation, tv_per_pixel,
)

FAST = DreamConfig(steps=12, size=48, lr=0.1, jitter=2, scale=0.05, rotate=5)


def test_params_give_images_in_0_1_and_start_from_a_photo_exactly() -> None:
    photo = torch.rand(1, 3, 20, 24) * 0.9 + 0.05
    for param in (PixelParam((1, 3, 20, 24)), FFTParam((1, 3, 20, 24)), PixelParam((1, 3, 20, 24), decorrelate=True), FFTParam((1, 3, 20, 24), decorrelate=False)):
        image = param()
        assert image.shape == (1, 3, 20, 24) and 0 <= image.min() and image.max() <= 1
        assert torch.allclose(param.start_from(photo)(), photo, atol=1e-4), type(param).__name__
    with pytest.raises(ConfigError, match="expected param in"):
        make_param("wavelet", (1, 3, 8, 8))


def test_tv_per_pixel_matches_a_numpy_reference_and_its_scale() -> None:
    image = torch.rand(2, 3, 9, 11)
    a = image.numpy()
    reference = np.abs(np.diff(a, axis=2)).mean(axis=(1, 2, 3)) + np.abs(np.diff(a, axis=3)).mean(axis=(1, 2, 3))
    assert np.allclose(tv_per_pixel(image).numpy(), reference, atol=1e-6)
    assert float(tv_per_pixel(torch.full((1, 3, 8, 8), 0.3))) == 0.0
    assert abs(float(tv_per_pixel(torch.rand(1, 3, 256, 256))) - 2 / 3) < 0.01  # uniform noise: 2 x E|U - U'| = 2/3


def test_objectives_compose_with_arithmetic() -> None:
    step = Step(logits=torch.tensor([[1.0, 5.0, -2.0]]), image=torch.full((1, 3, 4, 4), 0.7))
    tv, l2_value = float(tv_per_pixel(step.image)), 0.2**2
    objective = class_logit(1) - 0.5 * total_variation() + 2 * l2()
    assert objective(step).item() == pytest.approx(5.0 - 0.5 * tv + 2 * l2_value)
    assert (-class_logit(2))(step).item() == 2.0
    assert "logit[1]" in repr(objective) and "tv" in repr(objective)


def test_log_prob_objective_is_the_log_softmax_and_a_few_steps_raise_it(red_detector) -> None:
    import math

    from transferlab.inspect.dream import class_log_prob
    from transferlab.inspect.dream.render import render

    step = Step(logits=torch.tensor([[1.0, 5.0, -2.0], [0.0, 0.0, 0.0]]), image=torch.zeros(2, 3, 4, 4))
    by_hand = [5.0 - math.log(math.exp(1.0) + math.exp(5.0) + math.exp(-2.0)), -math.log(3.0)]
    assert class_log_prob(1)(step).tolist() == pytest.approx(by_hand, rel=1e-6)

    def log_p_blue(image: torch.Tensor) -> float:
        return float(torch.log(class_probabilities(red_detector, image)[0, 1]))

    param = make_param("pixel", (1, 3, 32, 32), seed=0)  # starts near grey: every class about 1/3
    start = log_p_blue(param())
    rendered = render(red_detector, class_log_prob(1), param, steps=5, lr=0.1)
    assert start == pytest.approx(-math.log(3.0), abs=0.05)
    assert log_p_blue(rendered.image) > start + 0.5  # five Adam steps: well on the way to the blue class
    assert all(later > earlier for earlier, later in zip(rendered.history, rendered.history[1:]))  # every step helped
    # the dream's own recipe with objective="log_prob" does the same through the config
    dreamt = dream(red_detector, "blue thing", DreamConfig(steps=5, size=32, lr=0.1, param="pixel", objective="log_prob", tv=0.0, l2=0.0, jitter=0, scale=0.0, rotate=0))
    assert dreamt.history[-1] > dreamt.history[0] and math.log(dreamt.probability) > start + 0.5


def test_frame_steps_are_spread_from_start_to_end() -> None:
    assert frame_steps(100, 5) == [0, 25, 50, 75, 100]
    assert frame_steps(10, 1) == [10] and frame_steps(10, 0) == []


def test_dream_raises_the_target_probability_and_leaves_the_model_alone(colour_run: tl.Run) -> None:
    model = colour_run.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = float(class_probabilities(model, make_param("fft", (1, 3, 48, 48))())[0, 1])
    model.train()
    try:
        result = dream(model, "dog", DreamConfig(steps=24, size=48, lr=0.1, tv=0.0, l2=0.0))
        assert model.training  # mode restored
    finally:
        model.eval()
    assert result.class_index == 1 and result.class_name == "dog"
    assert start < 0.5 and result.probability > 0.9 and result.history[-1] > result.history[0]
    assert all(p.grad is None for p in model.parameters())  # the weights never got gradients
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tv_weight_lowers_total_variation(colour_run: tl.Run) -> None:
    config = DreamConfig(steps=12, size=48, lr=0.1, param="pixel", tv=0.0)
    plain = dream(colour_run.model, "dog", config)
    smooth = dream(colour_run.model, "dog", DreamConfig(**{**config.__dict__, "tv": 300.0}))
    assert smooth.tv_per_pixel < 0.5 * plain.tv_per_pixel


def test_png_round_trip_keeps_the_class(colour_run: tl.Run, tmp_path: Path) -> None:
    result = dream(colour_run.model, "cat", DreamConfig(steps=30, size=64, lr=0.1, frames=3))
    assert result.top[0]["label"] == "cat" and result.probability_png == result.top[0]["prob"]
    files = result.save(tmp_path / "cat.png")
    assert set(files) == {"image", "summary", "frames"}
    # what `transferlab predict` does with the file: decode, resize + centre crop, the model
    reread = colour_run.load_image(files["image"])
    assert torch.equal(reread, png_round_trip(colour_run.model, result.image))
    assert int(class_probabilities(colour_run.model, reread).argmax()) == 0
    assert colour_run.predict([files["image"]], precision="fp32")[0]["top"][0]["label"] == "cat"
    summary = json.loads(files["summary"].read_text())
    assert summary["class"] == "cat" and summary["config"]["steps"] == 30
    assert summary["probability_png"] == pytest.approx(result.probability_png) and summary["tv_per_pixel"] > 0
    assert [step for step, _ in result.frames] == [0, 15, 30]


def test_class_names_resolve_or_fail_clearly(tiny_run: tl.Run) -> None:
    assert dream(tiny_run.model, "golden retr", DreamConfig(steps=1, size=32)).class_name == "golden retriever"
    with pytest.raises(ConfigError, match=r"class 'terrier' is ambiguous: it matches .*'Border terrier'"):
        dream(tiny_run.model, "terrier", FAST)
    assert dream(tiny_run.model, "tabby kat", DreamConfig(steps=1, size=32)).class_name == "tabby cat"
    with pytest.raises(ConfigError, match=r"unknown class 'qwxyz'"):
        dream(tiny_run.model, "qwxyz", FAST)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("param", "wavelet", "expected param in"), ("steps", -1, "expected steps >= 0"), ("tv", -1.0, "expected tv >= 0"),
    ("scale", 1.5, "expected scale < 1"), ("objective", "entropy", "expected objective in"), ("lr", 0.0, "expected lr > 0"),
])
def test_bad_config_values_are_refused_before_work(tiny_run: tl.Run, field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dream(tiny_run.model, 1, DreamConfig(**{field: value}))


def test_transforms_keep_images_in_range_and_grey_filled() -> None:
    torch.manual_seed(0)
    view = torch.ones(1, 3, 40, 40)
    for t in standard_transforms(8, 0.1, 10):
        view = t(view)
        assert 0 <= view.min() and view.max() <= 1
    assert abs(view.shape[-1] - 40) <= 12 and view.min() >= 0.5 - 1e-5  # padding and rotation corners are grey


def test_at_the_input_size_predict_sees_exactly_the_dream(colour_run: tl.Run, tmp_path: Path) -> None:
    # regression: the saved 224-px image was resized to 256 and cropped again by `predict`
    side = colour_run.model.preprocess.input_size[0]
    result = dream(colour_run.model, "dog", DreamConfig(steps=4, lr=0.1))
    assert tuple(result.image.shape[-2:]) == (side, side) and any(result.frame)
    files = result.save(tmp_path / "dog.png")
    seen = colour_run.load_image(files["image"])[0]  # decode, resize, centre crop: the predict path
    assert torch.equal(seen, (result.image[0] * 255).round() / 255)
