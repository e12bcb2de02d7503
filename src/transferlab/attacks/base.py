"""What every attack shares: eval mode, [0, 1] pixels, the ε-ball, targeted mode, early stopping, 8-bit output.

Each method (``fgsm.py``, ``pgd.py``) only says where to start and how to take one step; the loop here
runs it. Pixels stay in [0, 1]: the model's own ``Normalize`` does mean/std inside ``ImageClassifier``,
so an attack never sees (or gets wrong) the normalised space.

The returned images are on the 8-bit grid (k/255) and inside the ε-ball there, so writing them as PNG
loses nothing: the saved file is itself adversarial, and success is reported for exactly those pixels,
evaluated in fp32.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..models.state import PRECISIONS as INFERENCE_PRECISIONS
from ..models.state import bf16_available, warn_if_emulated  # noqa: F401  (bf16_available: public here too)
from ..models.state import eval_mode, frozen, preserved
from ..errors import ConfigError
from .metrics import per_image_norm

NORMS = ("Linf", "L2")
PRECISIONS = tuple(p for p in INFERENCE_PRECISIONS if p != "fp16")  # fp16 gradients underflow without loss scaling


def parse_eps(text: str | float, limit: float = 1.0) -> float:
    """An ε as typed: ``"4/255"`` or ``"0.0157"``; ``"8"`` is refused (pixels are in [0, 1]: write 8/255).

    ``limit``: the largest sensible value (1 for L∞; an L2 budget may exceed 1: pass ``inf``).

    Raises:
        ConfigError: not a number or fraction, negative, or above ``limit``.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        number = r"(?:\d+\.?\d*|\.\d+)"
        match = re.fullmatch(rf"\s*({number})\s*(?:/\s*({number})\s*)?", text)
        if not match or (match[2] is not None and float(match[2]) == 0):
            raise ConfigError(f"expected ε as a number or fraction like 4/255, got {text!r}")
        value = float(match[1]) / (float(match[2]) if match[2] else 1.0)
    if math.isnan(value) or not 0.0 <= value <= limit:
        hint = f" — pixels are in [0, 1], so write {text}/255" if value > limit else ""
        raise ConfigError(f"expected ε in [0, {limit:g}], got {text!r}{hint}")
    return value


def parse_eps_list(text: str, limit: float = 1.0) -> list[float]:
    """``"0,1/255,2/255"`` -> sorted distinct floats."""
    values = sorted({parse_eps(part, limit) for part in text.split(",") if part.strip()})
    if not values:
        raise ConfigError(f"expected a comma-separated list of ε like 0,1/255,4/255, got {text!r}")
    return values


def margins(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far the attack has got, in logits: > 0 means it succeeded.

    Targeted: target logit minus the best other one; untargeted: best other logit minus the true one.

    Shape:
        logits (B, C), labels (B,) -> (B,).
    """
    own = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return own - others if targeted else others - own


@dataclass
class AttackResult:
    """The adversarial images and what the model makes of them (fp32, on exactly these pixels)."""

    images: torch.Tensor  # (B, 3, H, W) in [0, 1]; on the 8-bit grid when the attack quantizes
    logits: torch.Tensor  # (B, C) fp32 logits of ``images``
    success: torch.Tensor  # (B,) bool: target reached (targeted) or label left (untargeted)
    steps: torch.Tensor  # (B,) gradient steps each image took before it stopped
    seconds: float  # wall time of the whole batch


class Attack:
    """Base class: runs ``start`` then ``step`` until every image succeeds with margin ``confidence``.

    Args:
        model: maps (B, 3, H, W) pixels in [0, 1] to logits; normalisation belongs inside it.
        eps: radius of the ball around each image (``norm``), in [0, 1] pixel units.
        steps: most gradient steps per image.
        norm: "Linf" or "L2".
        targeted: labels given to ``__call__`` are targets to reach (else true classes to leave).
        confidence: stop an image once it succeeds by this logit margin (0: as soon as it succeeds).
        quantize: return images on the 8-bit grid (inputs must be on it: any decoded photo is).
        precision: "auto" (bf16 autocast + channels_last where the hardware has native bf16), "bf16"
            or "fp32". Only the gradient is computed in bf16; the iterate, the projection and the final
            check are fp32.

    Shape:
        ``__call__(images (B, 3, H, W) in [0, 1], labels (B,) or int) -> AttackResult``.
    """

    name = "attack"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int,
        norm: str = "Linf",
        *,
        targeted: bool = False,
        confidence: float = 0.0,
        quantize: bool = True,
        precision: str = "auto",
    ) -> None:
        if norm not in NORMS:
            raise ConfigError(f"expected norm in {NORMS}, got {norm!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"expected precision in {PRECISIONS}, got {precision!r}")
        if not eps >= 0:
            raise ConfigError(f"expected ε >= 0, got {eps}")
        if steps < 0:
            raise ConfigError(f"expected steps >= 0, got {steps}")
        if confidence < 0:
            raise ConfigError(f"expected confidence >= 0, got {confidence}")
        self.model = model
        self.eps = float(eps)
        self.steps = int(steps)
        self.norm = norm
        self.targeted = targeted
        self.confidence = float(confidence)
        self.quantize = quantize
        self.precision = precision

    def __repr__(self) -> str:
        mode = "targeted" if self.targeted else "untargeted"
        return f"{type(self).__name__}(eps={self.eps:.5g}, norm={self.norm}, steps={self.steps}, {mode})"

    # -- what a method defines ----------------------------------------------------------------------
    def start(self, x0: torch.Tensor) -> torch.Tensor:
        """The first iterate (default: the image itself)."""
        return x0.clone()

    def step(self, x: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One update of ``x`` along ``grad`` (the ascent direction), projected with ``project``."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed so each image's gradient is independent of the batch; ascended by every method."""
        ce = nn.functional.cross_entropy(logits, labels, reduction="sum")
        return -ce if self.targeted else ce

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Nearest point of the ε-ball around ``x0`` inside [0, 1]; exact in fp32 (no ulp overshoot)."""
        if self.norm == "Linf":
            x = torch.minimum(torch.maximum(x, x0 - self.eps), x0 + self.eps).clamp_(0, 1)
            for _ in range(4):  # x0 ± eps rounds; step the few overshooting pixels back by one ulp
                over = (x - x0).abs() > self.eps
                if not over.any():
                    break
                x = torch.where(over, torch.nextafter(x, x0), x)
            return x
        delta = x - x0
        for _ in range(4):
            norms = per_image_norm(delta)
            if bool((norms <= self.eps).all()):
                break
            scale = torch.where(norms > self.eps, self.eps / norms.clamp_min(1e-12) * (1 - 1e-6), torch.ones_like(norms))
            delta = delta * scale.view(-1, 1, 1, 1)
        return (x0 + delta).clamp_(0, 1)  # clamping moves pixels towards x0: the norm only shrinks

    def to_grid(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``x`` on the 8-bit grid, still in the ball: Linf rounds and clips to ⌊255ε⌋ levels; L2 rounds,
        or truncates towards ``x0`` for images where rounding would leave the ball."""
        k0 = (x0 * 255).round()
        d = (x - x0) * 255
        if self.norm == "Linf":
            r = math.floor(self.eps * 255 + 1e-4)
            q = d.round().clamp_(-r, r)
        else:
            q = d.round()
            outside = per_image_norm(q) > self.eps * 255
            q[outside] = d[outside].trunc()
        return (k0 + q).clamp_(0, 255) / 255

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | int) -> AttackResult:
        x0, y = self._check(images, labels)
        started = time.perf_counter()
        fast = self._use_bf16(x0.device)
        with _attack_mode(self.model, fast):
            result = self._run(x0, y, fast)
        result.seconds = time.perf_counter() - started
        result.images = result.images.to(images.device)
        return result

    def _use_bf16(self, device: torch.device) -> bool:
        warn_if_emulated(self.precision, device)
        return self.precision == "bf16" or (self.precision == "auto" and bf16_available(device))

    def _check(self, images: torch.Tensor, labels: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3 or not len(images):
            raise ConfigError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        device = next(self.model.parameters()).device
        x0 = (images.float() / 255 if images.dtype == torch.uint8 else images.float()).to(device)
        if x0.numel() and (x0.min() < 0 or x0.max() > 1):
            raise ConfigError(f"expected pixels in [0, 1], got values in [{x0.min():.3g}, {x0.max():.3g}] — attacks work before normalisation")
        if self.quantize and ((x0 * 255) - (x0 * 255).round()).abs().max() > 1e-3:
            raise ConfigError("expected images on the 8-bit grid (k/255) to return 8-bit adversarials, got other values — round them with x.mul(255).round().div(255) or pass quantize=False")
        y = torch.as_tensor(labels, dtype=torch.long, device=device)
        y = y.expand(len(x0)).clone() if y.ndim == 0 else y
        if y.shape != (len(x0),):
            raise ConfigError(f"expected one label per image ({len(x0)}), got shape {tuple(y.shape)}")
        return x0, y

    def _logits(self, x: torch.Tensor, fast: bool) -> torch.Tensor:
        if not fast:
            return self.model(x).float()
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()

    def _finish(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.to_grid(x, x0) if self.quantize else x

    def _run(self, x0: torch.Tensor, y: torch.Tensor, fast: bool) -> AttackResult:
        n = len(x0)
        x = self.start(x0)
        done = torch.zeros(n, dtype=torch.bool, device=x0.device)
        steps = torch.zeros(n, dtype=torch.long, device=x0.device)
        final = x0.clone()
        final_logits = torch.empty(0, device=x0.device)  # becomes (n, C) at the first fp32 check
        for _ in range(self.steps):
            live = (~done).nonzero()[:, 0]
            if not len(live):
                break
            xl = x[live].detach().requires_grad_(True)
            logits = self._logits(xl, fast)
            with torch.no_grad():  # early stop: the fast logits nominate, fp32 on the 8-bit image decides
                nominated = self._won(logits.detach(), y[live])
                if nominated.any():
                    idx = live[nominated]
                    cand = self._finish(x[idx], x0[idx])
                    z = self._logits(cand, False)
                    ok = self._won(z, y[idx])
                    final_logits = _logit_buffer(final_logits, n, z)
                    final[idx[ok]], final_logits[idx[ok]] = cand[ok], z[ok]
                    done[idx[ok]] = True
            move = ~done[live]
            if not move.any():
                break
            (grad,) = torch.autograd.grad(self.loss(logits, y[live]), xl)
            with torch.no_grad():
                idx = live[move]
                x[idx] = self.step(xl.detach()[move], x0[idx], grad[move].float())
                steps[idx] += 1
        with torch.no_grad():
            rest = (~done).nonzero()[:, 0]
            if len(rest):
                cand = self._finish(x[rest], x0[rest])
                z = self._logits(cand, False)
                final_logits = _logit_buffer(final_logits, n, z)
                final[rest], final_logits[rest] = cand, z
        return AttackResult(final, final_logits, self._succeeded(final_logits, y), steps, 0.0)

    def _succeeded(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return margins(logits, y, self.targeted) > 0

    def _won(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = margins(logits, y, self.targeted)
        return (m > 0) & (m >= self.confidence)


def _logit_buffer(buffer: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """``buffer``, or an (n, C) one when it is still the empty placeholder (C taken from ``like``)."""
    return buffer if buffer.ndim == 2 else torch.empty(n, like.shape[1], device=like.device)


@contextlib.contextmanager
def _attack_mode(model: nn.Module, fast: bool) -> Iterator[None]:
    """Eval mode, no parameter gradients and (fast path) channels_last for the attack; all restored after."""
    convs = [p for p in model.parameters() if p.ndim == 4]
    to_cl = fast and bool(convs) and not all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    with preserved(model) if to_cl else contextlib.nullcontext(), eval_mode(model), frozen(model):
        if to_cl:
            model.to(memory_format=torch.channels_last)
        yield
