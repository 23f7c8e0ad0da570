"""The training loop's settings (`TrainSettings`), apart from the loop so they are built without torch.

`archbench.settings.Recipe.train_settings` builds them from a recipe; `archbench.train.loop.fit` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from archbench.base.numerics import compile_mode
from archbench.train.budget import Budget

if TYPE_CHECKING:
    import torch


@dataclass
class TrainSettings:
    budget: Budget
    batch_size: int  # per process; the global batch is this times the number of DDP ranks
    make_optimizer: Callable[..., torch.optim.Optimizer]  # e.g. partial(torch.optim.SGD, momentum=0.9)
    lr: float  # base learning rate, already scaled to the batch size
    weight_decay: float
    schedule: Callable[[float], float]  # progress in [0, 1] -> factor on lr
    decay_norm_and_bias: bool = False
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None
    ema_decay: float | None = None
    amp: str = "off"  # one of archbench.train.precision.AMPS: auto is resolved before training
    channels_last: bool = False
    compile: bool | str = "off"  # a mode of archbench.base.numerics.COMPILE_MODES; true/false mean default/off
    target_top1: float | None = None
    on_epoch: Callable[[dict], None] | None = None  # each history entry, e.g. to an experiment logger
    identity: str | None = None  # the run's fingerprint: a checkpoint of another identity is never resumed
    machine: str | None = None  # the label of the machine training now (speed's, not learning's, identity)
    # Validation passes per epoch for the learning curve (train.val_curve); the extra ones inside an epoch
    # are read only as a curve, never for selection, and change no weight: not part of the run's identity.
    val_per_epoch: int = 1
    train_macs_per_image: float | None = None  # needed by MACs budgets and recorded as consumed compute
    progress_bar: bool = False
    # (seconds per training step, validation passes left) -> (seconds, words) of what follows training: the
    # run's evaluation, priced by the caller (archbench.run.phases), so the ETA says when the run ends.
    after_training: Callable[[float, int], tuple[float, str]] | None = None
    # A checkpoint is written when this many seconds have passed since the last one: at an epoch's end, and
    # (one process, > 0) within an epoch too, so a hard kill of a long CPU epoch loses at most about this
    # much; the last epoch and a signal always write. 0 writes at every epoch's end and never mid-epoch.
    # GPU epochs of small models take about a second: an fsync'd checkpoint every step would cost more.
    checkpoint_every_s: float = 60.0

    def __post_init__(self):
        # Values are checked once, where they are read (archbench.settings.Recipe, which builds these
        # settings); compile is only normalised, so true/false keep meaning default/off here too.
        self.compile = compile_mode(self.compile)
