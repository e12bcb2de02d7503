"""How far a run's probabilities can be taken at their word, and when to say "none of these".

A run's ``Confidence`` holds the softmax temperature (temperature scaling, Guo et al. 2017) and an
in-distribution score with a threshold: images scoring below it look like none of the run's classes.
Both are fitted on the images used for choosing, never on the reported split (``train.calibrate``).

Scores, all "higher = more like the training images":
    ``msp``          maximum softmax probability (Hendrycks & Gimpel 2017), the baseline
    ``energy``       T * logsumexp(logits / T) (Liu et al. 2020)
    ``mahalanobis``  minus the smallest Mahalanobis distance to a class mean, shared covariance (Lee et al. 2018)
    ``knn``          minus the distance to the k-th nearest training image, unit-length features (Sun et al. 2022)

The numbers a method needs (a bank of training features, class means and a precision matrix) are
stored beside the model in ``confidence.safetensors``; the rest goes in ``model.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .defaults import DEFAULT_ACCEPT, DEFAULT_METHOD  # noqa: F401  (import-light, for the CLI's defaults)
from .defaults import SCORE_METHODS as METHODS
TENSORS_FILE = "confidence.safetensors"
ADD_HINT = "add one with `transferlab calibrate RUN DATA` (or train the run again)"


@dataclass
class Confidence:
    """Temperature, in-distribution score and threshold of a run (the defaults change nothing)."""

    temperature: float = 1.0  # logits are divided by this before the softmax
    method: str | None = None  # one of METHODS; None: no "none of these" rejection
    threshold: float | None = None  # images scoring below it are rejected
    accept: float | None = None  # the share of the choosing images the threshold accepts
    k: int = 1  # knn: which neighbour's distance is the score
    fitted_on: str = ""  # which images, e.g. "val (24 images); knn bank: train (96 images)"
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # "bank" (M, D) | "means" (C, D), "precision" (D, D)

    @property
    def rejects(self) -> bool:
        return self.method is not None and self.threshold is not None

    def logits_to_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities. Shape: (N, C) -> (N, C)."""
        return torch.softmax(logits.float() / self.temperature, dim=1)

    def score(self, features: torch.Tensor, logits: torch.Tensor, method: str | None = None) -> torch.Tensor:
        """In-distribution score of each image (higher: more like the training images).

        Shape:
            features (N, D) pooled pre-logit features, logits (N, C); returns (N,) float32.
        """
        method = method or self.method or "msp"
        logits = logits.float()
        if method == "msp":
            return self.logits_to_probs(logits).amax(1)
        if method == "energy":
            return self.temperature * torch.logsumexp(logits / self.temperature, dim=1)
        if method == "knn":
            bank = self.tensors["bank"].float()  # (M, D), unit rows
            sims = F.normalize(features.float(), dim=1) @ bank.T  # (N, M) cosine similarities
            kth = sims.topk(min(self.k, bank.shape[0]), dim=1).values[:, -1]
            return -(2.0 - 2.0 * kth).clamp_min(0).sqrt()  # minus the k-th Euclidean distance on the unit sphere
        if method == "mahalanobis":
            means, precision = self.tensors["means"].float(), self.tensors["precision"].float()
            diff = features.float()[:, None, :] - means[None]  # (N, C, D)
            dist = torch.einsum("ncd,de,nce->nc", diff, precision, diff)  # (N, C) squared distances
            return -dist.amin(1)
        raise ValueError(f"expected a score in {METHODS}, got {method!r}")

    def accepted(self, scores: torch.Tensor) -> torch.Tensor:
        """Which images are in distribution (all of them when the run has no threshold). Shape: (N,) bool."""
        if not self.rejects:
            return torch.ones(len(scores), dtype=torch.bool)
        return scores >= self.threshold

    def to_record(self) -> dict[str, Any]:
        """What ``model.json`` stores under ``confidence`` (the tensors go to ``TENSORS_FILE``)."""
        out: dict[str, Any] = {"temperature": self.temperature, "method": self.method, "threshold": self.threshold, "accept": self.accept, "fitted_on": self.fitted_on}
        if self.method == "knn":
            out["k"] = self.k
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any] | None, tensors: dict[str, torch.Tensor] | None = None) -> Confidence:
        """Read ``model.json``'s ``confidence`` (None: a run made before calibration existed)."""
        if not record:
            return cls()
        known = {"temperature", "method", "threshold", "accept", "k", "fitted_on"}
        return cls(**{k: v for k, v in record.items() if k in known}, tensors=dict(tensors or {}))

    def describe(self, n_classes: int) -> str:
        """One line for people: the temperature and what is rejected."""
        line = f"temperature {self.temperature:.2f}"
        if not self.rejects:
            return f"{line}; no 'none of these' threshold — {ADD_HINT}"
        return f"{line}; 'none of these' below a {self.method} score of {self.threshold:.4g} (accepts {100 * (self.accept or 0):.0f} % of {self.fitted_on.split(';')[0]}); {n_classes} classes"
