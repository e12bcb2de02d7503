"""The training recipes as plain dataclasses: importing them loads no torch (the CLI's defaults)."""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
MIXES = ("none", "mixup", "cutmix", "both")


@dataclass(frozen=True)
class ProbeConfig:
    """How the head is fitted; the defaults work for photos in general."""

    l2_grid: tuple[float, ...] = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)  # penalty per sample on standardised features, strongest first
    max_iter: int = 100  # L-BFGS iterations per fit
    val_frac: float = 0.2  # share of training images held out to pick the L2 strength when the data has no val split
    folds: int = 1  # > 1: without a val split, choose L2 by this many folds of the training features instead
    # of one holdout. On the development suite's selection splits (3 seeds) 5-fold scored the same as the
    # holdout (-0.02 points, one image) at 4x the head time, so the holdout stays the default (BENCHMARKS.md)
    kfold_max: int = 2000  # above this many training images one holdout is judge enough (and k-fold slower)


@dataclass(frozen=True)
class FinetuneConfig:
    """Phase-2 recipe; every field is also a ``transferlab train`` flag."""

    epochs: int = 6  # upper bound; early stopping may end sooner
    unfreeze: str = "all"  # "all", or "K": only the last K stages of the backbone (plus the head) learn. "3"
    # trains twice as fast (41 against 21 images/s for EfficientNet-Lite0 on 2 cores) but learnt less: see BENCHMARKS.md
    lr: float = 1e-3  # peak learning rate of the head; stage i from the top gets lr * layer_decay**i
    layer_decay: float = 0.7  # discriminative learning rates: earlier (more generic) layers move less
    optimizer: str = "adamw"  # adamw | adam | sgd (momentum 0.9)
    weight_decay: float = 0.05  # decoupled for adamw; biases and norms are not decayed
    schedule: str = "cosine"  # cosine (after linear warm-up) | onecycle (cosine up from lr/25, then down) | constant
    warmup_epochs: float = 0.5  # linear warm-up from 0, in epochs
    label_smoothing: float = 0.1
    dropout: float = 0.2  # on the pooled features, before the head
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    augment: str = "light"  # none | light | strong (see data/augment.py)
    train_size_ratio: float = 0.875  # random training crops at this fraction of the evaluation input size
    # (to a multiple of 32: 192 px for 224): objects in random crops look larger than in the centre crop, and
    # the smaller size compensates (FixRes), with a quarter less compute. Oxford mini, one run per seed:
    # 0.977 and 0.977 against 0.973 and 0.970 trained at 224 px
    mix: str = "none"  # none | mixup | cutmix | both: blend pairs of training images and their labels
    batch_size: int = 32
    patience: int = 2  # stop once this many epochs in a row bring no better validation score
    compile: bool = False  # torch.compile the training forward: for GPUs; on the 2-core CPU here it took 48 s
    # to compile EfficientNet-Lite0 and then trained 12% slower (37 vs 42 images/s)
    refit_head: bool = True  # then fit the head again (L-BFGS, as the probe) on the tuned features of train + val
    ema_epochs: float = 1.0  # >0: validate and keep an exponential moving average of the weights, with a
    # horizon of this many epochs (decay 1 - 1/(ema_epochs x steps per epoch)); 0 keeps the raw weights. On
    # Oxford mini, seeds 0-2: 0.970, 0.970, 0.977 test accuracy, against 0.956, 0.956, 0.973 without
    bn_stats: str = "frozen"  # "frozen": every BatchNorm keeps its pretrained statistics (as the Keras guide
    # advises; small augmented batches make noisy ones); "train": update them in the unfrozen stages
    min_win_rate: float = 0.9  # keep the fine-tuned weights only when they beat the probe's (epoch 0) in at least
    # this share of bootstrap resamples of the validation images; otherwise the run ends as its own probe
