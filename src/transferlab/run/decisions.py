"""The keep rule's verdicts in words: why ``auto`` skips fine-tuning, what a run's ``decision`` line says, and
when a probe run suggests ``--strategy auto``."""

from __future__ import annotations

from ..train import FinetuneResult, ProbeResult
from .config import AUTO_BUDGET_S

def probe_errors(head: ProbeResult, n_val: int) -> int | None:
    """How many of ``n_val`` validation images the probe's chosen head gets wrong (None: no score to count)."""
    chosen = next((s for s in head.val_scores if s["l2"] == head.l2), None)
    return None if chosen is None or not n_val else round((1.0 - chosen["accuracy"]) * n_val)


def auto_skip(head: ProbeResult, n_val: int, min_win_rate: float) -> str | None:
    """Why ``auto`` does not fine-tune at all, or None.

    A fine-tuned model that got every validation image right would beat the probe in the bootstrap
    resamples that hold at least one of the probe's ``e`` errors: 1 - (1 - e/n)^n of them. When even
    that is below ``min_win_rate`` (no error: 0; one error: 0.63; two: 0.86), no fine-tuning could show
    a clear win, and minutes of training would end as the probe anyway.
    """
    errors = probe_errors(head, n_val)
    if errors is None:
        return None
    best_case = 1.0 - (1.0 - errors / n_val) ** n_val
    if best_case >= min_win_rate:
        return None
    wrong = "is right on every validation image" if not errors else f"gets {errors} of {n_val} validation images wrong"
    return f"kept the probe: it {wrong}, so even a perfect fine-tuned model could not be shown to do better (it would win {100 * best_case:.0f}% of resamples, under the {100 * min_win_rate:.0f}% required)"


AUTO_HINT_MIN_IMAGES = 1000  # fine-tuning won clearly on all 4 dev-suite sets above this many training images
# (full size, BENCHMARKS.md; Caltech-101 in 2 seeds of 3), and in 1 of 21 runs at 300 images, where suggesting minutes of training misleads


def auto_small(n_train: int) -> str | None:
    """Why ``auto`` does not fine-tune a set this small, or None: on the development suite fine-tuning won
    clearly in 1 of 21 runs at 300 training images and 0 of 7 at 1,000 (BENCHMARKS.md)."""
    if n_train >= AUTO_HINT_MIN_IMAGES:
        return None
    return (f"kept the probe: with {n_train} training images (under {AUTO_HINT_MIN_IMAGES:,}) fine-tuning rarely wins clearly "
            "(1 of 28 development-suite runs), so auto spends the time on the features instead; --strategy finetune tries it anyway")


def probe_hint(head: ProbeResult, n_train: int, min_win_rate: float) -> str | None:
    """For a probe run: a line saying ``auto`` might do better, when the set is large enough for fine-tuning
    to have won on the development suite and the probe errs often enough for a win to be shown; else None."""
    errors = probe_errors(head, head.judged)
    if n_train < AUTO_HINT_MIN_IMAGES or errors is None or auto_skip(head, head.judged, min_win_rate):
        return None
    return (f"probe only; fine-tuning might do better here: the probe gets {errors} of {head.judged} validation images wrong, and fine-tuning "
            f"won clearly on all 4 development sets of over {AUTO_HINT_MIN_IMAGES:,} images — `--strategy auto` tries it within {AUTO_BUDGET_S / 60:.0f} min and keeps it only on a clear win")


def decision(tuned: FinetuneResult, n_val: int) -> str:
    """One line: what was tried and why the kept model won."""
    epochs = len(tuned.history) - 1
    ran = f"fine-tuned {epochs} epoch(s) in {sum(r.get('train_s', 0.0) for r in tuned.history):.0f} s" + (" (time budget reached)" if tuned.over_budget else "")
    if tuned.retried_after:
        ran += (f" (after {tuned.retried_after} epoch(s) its best was below the probe in {100 * (tuned.retry_reason or 0):.0f}% of resamples: "
                f"started again from the probe at lr {tuned.retry_lr:.2g})")
    if not tuned.best_tuned_epoch:
        return f"{ran}; kept the probe: no epoch finished"
    probe, best = tuned.history[0], tuned.history[tuned.best_tuned_epoch]
    tuned_score = f"{best['val_accuracy']:.3f}" if tuned.judged_accuracy is None else f"{tuned.judged_accuracy:.3f} with its head refitted ({best['val_accuracy']:.3f} with its own)"
    versus = f"epoch {tuned.best_tuned_epoch} {tuned_score} vs the probe's {probe['val_accuracy']:.3f} on {n_val} validation images, better in {100 * (tuned.win_rate or 0):.0f}% of resamples"
    if tuned.head_win_rate is not None:
        versus += f" ({100 * tuned.head_win_rate:.0f}% with its own head)"
    kept = "kept fine-tuning" if tuned.best_epoch else "kept the probe (not a clear win)"
    return f"{ran}; {versus}: {kept}"
