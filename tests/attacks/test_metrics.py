"""Image-difference metrics against scikit-image, the reference implementation."""

import numpy as np
import pytest
import torch

from transferlab.attacks import l2, linf, parse_eps, parse_eps_list, psnr, ssim
from transferlab.errors import ConfigError

skimage_metrics = pytest.importorskip("skimage.metrics")


def pair(seed: int = 0, noise: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, 3, 40, 36, generator=g)
    return a, (a + noise * torch.randn(a.shape, generator=g)).clamp(0, 1)


def test_ssim_and_psnr_match_scikit_image() -> None:
    a, b = pair()
    ours_ssim, ours_psnr = ssim(a, b), psnr(a, b)
    for i in range(len(a)):
        x, y = (t[i].permute(1, 2, 0).double().numpy() for t in (a, b))
        ref = skimage_metrics.structural_similarity(x, y, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert ours_ssim[i].item() == pytest.approx(ref, abs=1e-5)
        assert ours_psnr[i].item() == pytest.approx(skimage_metrics.peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-4)


def test_identical_images_are_perfect() -> None:
    a, _ = pair()
    assert torch.all(ssim(a, a) == 1) and torch.isinf(psnr(a, a)).all()
    assert torch.all(linf(a, a) == 0) and torch.all(l2(a, a) == 0)


def test_norms_per_image() -> None:
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0, 0, 0, 0], b[0, 1, 1, 1] = 3 / 255, -4 / 255
    assert linf(b, a).tolist() == pytest.approx([4 / 255, 0])
    assert l2(b, a).tolist() == pytest.approx([5 / 255, 0])


def test_ssim_needs_images_bigger_than_its_window() -> None:
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize(("text", "value"), [("4/255", 4 / 255), ("0.03", 0.03), (" 1 / 255 ", 1 / 255), ("0", 0.0), (".5/255", 0.5 / 255)])
def test_parse_eps(text: str, value: float) -> None:
    assert parse_eps(text) == value


@pytest.mark.parametrize(("text", "message"), [("8", "write 8/255"), ("4/0", "fraction"), ("-1/255", "fraction"), ("a", "fraction")])
def test_parse_eps_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_eps(text)


def test_parse_eps_list_sorts_and_dedups_and_l2_may_exceed_one() -> None:
    assert parse_eps_list("4/255,0, 1/255,4/255") == [0.0, 1 / 255, 4 / 255]
    assert parse_eps(np.float64(2.5).item(), float("inf")) == 2.5 and parse_eps("3", float("inf")) == 3.0
