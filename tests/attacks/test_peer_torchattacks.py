"""Peer check: on the same model, images, ε and steps, our PGD succeeds at least as often as torchattacks'
PGD minus 2 points, although ours is judged on 8-bit pixels and theirs on unrounded floats."""

import pytest
import torch

import transferlab as tl
from transferlab.attacks import PGD

from ..conftest import OXFORD_MINI, needs_oxford
from .conftest import grid_images, tiny_classifier

torchattacks = pytest.importorskip("torchattacks")


def their_success(model, x, labels, goal, eps: float, steps: int, targeted: bool) -> float:
    attack = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=True)
    if targeted:
        attack.set_mode_targeted_by_function(lambda images, labels: goal)
    adv = attack(x, labels)
    with torch.no_grad():
        pred = model(adv).argmax(1)
    return float((pred == goal).float().mean() if targeted else (pred != labels).float().mean())


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("eps", [1 / 255, 2 / 255])  # budgets where neither attack always wins
def test_pgd_is_no_weaker_than_torchattacks(eps: float, targeted: bool) -> None:
    model, x = tiny_classifier(), grid_images(64, seed=1)
    with torch.no_grad():
        labels = model(x).argmax(1)
    goal = (labels + 1) % 3 if targeted else labels
    theirs = their_success(model, x, labels, goal, eps, 10, targeted)
    ours = float(PGD(model, eps, steps=10, targeted=targeted)(x, goal).success.float().mean())
    assert 0.05 < theirs < 0.95  # the comparison means something
    assert ours >= theirs - 0.02


@pytest.mark.slow
@needs_oxford
def test_pgd_is_no_weaker_than_torchattacks_on_real_photos() -> None:
    run = tl.open_model("efficientnet_lite0")
    names = sorted(p for p in (OXFORD_MINI / "images").glob("american_bulldog_*.jpg"))[:8]
    x = torch.cat([run.load_image(p) for p in names])
    model = run.model.eval()
    with torch.no_grad():
        labels = model(x).argmax(1)
    goal = torch.full_like(labels, run.class_index("tabby cat"))
    theirs = their_success(model, x, labels, goal, 1 / 255, 5, True)
    ours = float(PGD(model, 1 / 255, steps=5, targeted=True)(x, goal).success.float().mean())
    assert ours >= theirs - 0.02
