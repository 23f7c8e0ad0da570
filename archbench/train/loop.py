"""The training loop: one recipe, one budget, checkpoints on a time cadence, resume that is exact.

Reads top to bottom: what `fit` returns -> optimizer -> evaluation -> signals -> the training state (what a
checkpoint holds) -> one epoch -> evaluate and select -> `fit`, which ties them together under a budget. Its
settings, `TrainSettings`, are in loop_settings.py, so a recipe builds them without torch. Nothing here
knows about Hydra; the entry point hands in plain values and callables.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from archbench.base.device import synchronize
from archbench.base.timefmt import duration  # seconds below a minute: "0 min" said nothing
from archbench.train.budget import Usage, budget_consumed
from archbench.train.checkpoint import load_checkpoint, save_checkpoint
from archbench.train.loop_settings import TrainSettings
from archbench.train.precision import AMP_DTYPES

log = logging.getLogger(__name__)

# Exit code for "interrupted, checkpoint saved, run me again" (BSD EX_TEMPFAIL): a cluster requeue or a
# wrapper script can tell it apart from success (0) and from a crash (1).
EXIT_INTERRUPTED = 75
# How often the loss is checked for NaN/inf: each check is a host-device sync, so not every step (and
# once more at every epoch's end).
DIVERGENCE_CHECK_EVERY = 50
# An epoch whose mean training loss is above this many times chance level (ln of the class count: the loss
# of a uniform guess) has diverged even when the loss is finite: lr=1e6 reaches losses of 1e20.
DIVERGED_LOSS_FACTOR = 10.0
# The ETA line comes after this many timed steps: enough to average out the first slow ones.
ETA_AFTER_STEPS = 10
# DDP: the ranks agree on stopping (a signal, rank 0's clock, a non-finite loss) every this many steps,
# not every step: each agreement is an all-reduce and a host-device sync. A divisor of
# DIVERGENCE_CHECK_EVERY, so every divergence check falls on an agreement step.
DDP_DECISION_EVERY = 10


# A stop asked of this process before its training began (a sweep worker signalled between or outside
# trainings, archbench.sweep.watch_for_stop): the next fit stops at its first step, after a checkpoint.
STOP_REQUESTED: list[int] = []


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was saved and the same command resumes the run."""


@dataclass
class TrainResult:
    status: str  # complete | diverged
    history: list[dict]
    metrics: dict
    train: dict
    model: nn.Module = field(repr=False)
    # (predicted class, label) per test image of the selected weights, for paired comparisons.
    test_outcomes: tuple | None = field(default=None, repr=False)


# ------------------------------------------------------------------------------------------- optimizer

def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Weight decay on weights only: decaying BatchNorm scales and biases hurts accuracy (Goyal et al. 2017)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def autocast_context(device: torch.device, amp: str):
    """Mixed precision in `amp` (a train.amp word, auto resolved); no context for fp32 ("off")."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def _topk_correct(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top-1 hits, top-5 hits, predicted class): the prediction is topk's first, so a tie between classes
    (frequent in bf16 logits) is broken the same way in the count and in the per-image outcomes."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top.eq(y[:, None])
    return hit[:, :1].sum(), hit.sum(), top[:, 0]


# ---------------------------------------------------------------------------------------------- evaluate

@torch.inference_mode()
def evaluate(model: nn.Module, loader, device: torch.device, amp: str = "off", channels_last: bool = False,
             outcomes: list | None = None) -> dict:
    """Loss, top-1 and top-5 (percent) over a whole loader; sums stay on the device until the end.

    `outcomes`, when given, receives (predicted class, label) per batch.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    top1 = torch.zeros((), device=device, dtype=torch.long)
    top5 = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        c1, c5, predicted = _topk_correct(logits, y)
        if outcomes is not None:
            outcomes.append((predicted.cpu(), y.cpu()))
        top1 += c1
        top5 += c5
        count += y.numel()
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluation loader is empty")
    return {"loss": _finite_or_none(loss_sum.item() / count), "top1": 100.0 * top1.item() / count,
            "top5": 100.0 * top5.item() / count, "count": count}


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN; a diverged loss is recorded as null.
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------- distributed

def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _world()[1] > 1:
        torch.distributed.all_reduce(t)
    return t


# ------------------------------------------------------------------------------------------------ signals

@contextlib.contextmanager
def _interrupt_flag():
    """SIGTERM/SIGINT/SIGUSR2 set a flag that the loop checks after each step, so it stops at a consistent point.

    SIGUSR2 is what submitit sends before a SLURM time limit or preemption; its own handler requeues the
    job. `flag["previous"]` keeps that handler so the loop can hand over to it after saving a checkpoint.
    """
    flag = {"signal": STOP_REQUESTED[0] if STOP_REQUESTED else None, "previous": {}}
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread (joblib threads, tests)
        return
    previous = flag["previous"]

    def handler(signum, frame):
        flag["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _hand_over(interrupt: dict) -> None:
    """After the checkpoint is safe: let submitit's SIGUSR2 handler requeue the job, as it would have."""
    signum = interrupt["signal"]
    previous = interrupt["previous"].get(signum)
    if signum == getattr(signal, "SIGUSR2", None) and callable(previous):
        previous(signum, None)


def _collective_decision(interrupt: dict, state: TrainingState, loss, check_finite: bool, device, rank: int) -> bool:
    """DDP: every rank takes the same stop decisions, from rank 0's clock; returns True when a loss is not finite.

    One small all-reduce (max) every DDP_DECISION_EVERY steps of [interrupted anywhere, rank 0's training
    time, non-finite anywhere], so ranks never leave the loop at different steps (a collective would hang) and a
    seconds budget's schedule gives every replica the same learning rate.
    """
    nonfinite = check_finite and not torch.isfinite(loss).item()
    decision = torch.tensor([float(interrupt["signal"] is not None), state.train_s if rank == 0 else 0.0,
                             float(nonfinite)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(decision, op=torch.distributed.ReduceOp.MAX)
    if decision[0].item() > 0 and interrupt["signal"] is None:
        interrupt["signal"] = signal.SIGTERM  # another rank was signalled: stop here too, at the same step
    state.train_s = float(decision[1].item())
    return decision[2].item() > 0


# ------------------------------------------------------------------------------------------ training state

@dataclass
class TrainingState:
    """Everything that must survive an interruption; the checkpoint holds it under "progress".

    It goes into the checkpoint as a plain dict (`as_dict`), never as this class: checkpoints are loaded
    with weights_only=True, which unpickles no classes.
    """
    epoch: int = 0  # the epoch being trained, which is also the number of epochs finished
    step: int = 0
    train_s: float = 0.0  # training time so far; warm-up steps and evaluation are not in it
    history: list[dict] = field(default_factory=list)
    best_top1: float | None = None
    best_epoch: int | None = None
    best_state: dict | None = None  # the selected weights, tested once at the end
    time_to_target: dict | None = None
    in_epoch: dict | None = None  # where an interrupted epoch stopped: batches done, their sums and time
    diverged: bool = False
    diverged_reason: str | None = None
    warmup_s: float | None = None
    warmup_images: int | None = None
    # Each stretch of training on one machine: {"machine": label, "from_step": the step it began at}. A run
    # resumed elsewhere lists every machine; the steps kept from each follow from where the next began.
    machines: list[dict] = field(default_factory=list)
    # Validation inside epochs (val_per_epoch > 1): {"step", "epoch", "val_top1", "val_loss", "elapsed_s"}.
    curve: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        progress = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.warmup_images is None:
            del progress["warmup_images"]  # the key has always first appeared with the first warm-up step
        return progress

    @classmethod
    def from_dict(cls, progress: dict) -> TrainingState:
        # Keys an older checkpoint lacks (warmup_s, warmup_images, diverged_reason) keep their defaults.
        return cls(**{f.name: progress[f.name] for f in fields(cls) if f.name in progress})


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ----------------------------------------------------------------------------------------------- one epoch

@dataclass
class _Trainer:
    """What `fit` builds once and every epoch uses. Only `save` puts any of it into the checkpoint."""
    settings: TrainSettings
    model: nn.Module
    train_model: nn.Module  # `model`, wrapped in DDP and/or compiled
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    device: torch.device
    rank: int
    world: int
    planned_steps: int | None
    checkpoint_path: str | Path | None
    bar: Callable
    eta_from: tuple[int, float]  # (step, train_s) the ETA is measured from: the step after the warm-up step
    eval_model: nn.Module | None = None  # what validation reads (the EMA when there is one)
    val_loader: Any = None
    # Per process: a resumed run compiles again, and that is kept out of training time too.
    warmed_up: bool = False
    last_save: float = field(default_factory=time.monotonic)  # when a checkpoint was last written (or fit began)

    @property
    def eta_at_step(self) -> int:
        return self.eta_from[0] + ETA_AFTER_STEPS

    def fraction_done(self, state: TrainingState) -> float:
        return self.settings.budget.progress(state.step, state.train_s, self.planned_steps)

    def save(self, state: TrainingState, in_epoch: dict | None, write: bool = True) -> None:
        """Rank 0 writes the checkpoint (when `write`); `in_epoch` is None at an epoch's end."""
        state.in_epoch = in_epoch  # on every rank: a resumed epoch's replay point must clear everywhere
        if self.checkpoint_path is None or self.rank != 0 or not write:
            return
        self.last_save = time.monotonic()
        save_checkpoint(self.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(self.device), "progress": state.as_dict(), "step": state.step,
            "identity": self.settings.identity,
            # what `auto` resolved to: a resume on another machine trains on in the same numerics
            "numerics": {"amp": self.settings.amp, "channels_last": bool(self.settings.channels_last)},
        })

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step at learning rate `lr`; returns the loss and the logits."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.settings.amp):
            logits = self.train_model(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.grad_clip_norm:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss, logits


@dataclass
class EpochTotals:
    """One epoch's figures, summed over DDP ranks: what its history entry is made of."""
    epoch: int
    train_loss: float  # mean over the epoch's images; not finite when the run diverged
    train_top1: float
    images: float
    seconds: float  # the epoch's training time, an interrupted epoch's first part included
    lr: float  # the last step's
    num_classes: int | None


def train_one_epoch(trainer: _Trainer, state: TrainingState, loader, interrupt: dict) -> EpochTotals:
    """Train epoch `state.epoch` (the rest of it, after a mid-epoch checkpoint) until it or the budget ends.

    `state.step` and `state.train_s` move with every step. A non-finite loss ends the epoch early (its mean
    loss is then not finite either); a signal saves a mid-epoch checkpoint and raises TrainingInterrupted.
    """
    settings, device = trainer.settings, trainer.device
    epoch = state.epoch
    resume = state.in_epoch or {"batches": 0, "loss_sum": 0.0, "top1": 0, "count": 0, "train_s": 0.0}
    loader.set_epoch(epoch)
    trainer.train_model.train()
    # The sums stay on the device: reading them every step would wait for the device every step.
    loss_sum = torch.tensor(resume["loss_sum"], device=device, dtype=torch.float64)
    correct = torch.tensor(resume["top1"], device=device, dtype=torch.long)
    count = resume["count"]
    epoch_s = resume["train_s"]
    start_train_s = state.train_s - epoch_s
    tick = time.perf_counter()
    lr = settings.lr * settings.schedule(min(trainer.fraction_done(state), 1.0))
    logits = None
    for batch_index, (x, y) in enumerate(trainer.bar(loader, epoch, _bar_total(trainer, state, loader, resume))):
        if batch_index < resume["batches"]:
            continue  # replay the deterministic order up to where the interrupted epoch stopped
        if trainer.fraction_done(state) >= 1.0:
            break
        lr = settings.lr * settings.schedule(trainer.fraction_done(state))
        loss, logits = trainer.train_step(x, y, lr)
        loss_sum += loss.detach().double() * y.numel()
        correct += logits.detach().argmax(1).eq(y).sum()
        count += y.numel()
        state.step += 1
        if not trainer.warmed_up:
            # The first step compiles, autotunes and grows allocators: timed apart, outside the
            # training time, img/s and a seconds budget, so compilation never eats the budget.
            synchronize(device)
            state.warmup_s = (state.warmup_s or 0.0) + time.perf_counter() - tick
            trainer.warmed_up = True
            state.warmup_images = (state.warmup_images or 0) + y.numel() * trainer.world
            if device.type == "cuda":
                # the first step's autotuning workspace is not the model's memory: the peak starts here
                torch.cuda.reset_peak_memory_stats(device)
            tick = time.perf_counter()
        epoch_s = resume["train_s"] + time.perf_counter() - tick
        check_finite = state.step % DIVERGENCE_CHECK_EVERY == 0
        if trainer.world > 1:
            # Between agreements every rank keeps the last agreed clock, so a seconds budget's schedule and
            # stop stay identical on all replicas; the agreement moves it to rank 0's.
            nonfinite = False
            if state.step % DDP_DECISION_EVERY == 0:
                state.train_s = start_train_s + epoch_s
                nonfinite = _collective_decision(interrupt, state, loss, check_finite, device, trainer.rank)
        else:
            state.train_s = start_train_s + epoch_s
            nonfinite = check_finite and not torch.isfinite(loss).item()
        if nonfinite:
            break
        if state.step == trainer.eta_at_step and trainer.rank == 0:
            _log_eta(state, settings, trainer.planned_steps, trainer.eta_from, len(loader))
        if _curve_point_due(trainer, batch_index, len(loader)):
            tick += _validate_within_epoch(trainer, state, epoch + (batch_index + 1) / len(loader))
        in_epoch = {"batches": batch_index + 1, "loss_sum": loss_sum.item(), "top1": correct.item(),
                    "count": count, "train_s": epoch_s}
        if interrupt["signal"] is not None and (trainer.world == 1 or state.step % DDP_DECISION_EVERY == 0):
            trainer.save(state, in_epoch)
            _hand_over(interrupt)
            raise TrainingInterrupted(f"signal {interrupt['signal']} at epoch {epoch}, step "
                                      f"{state.step}; checkpoint saved to {trainer.checkpoint_path}")
        if _mid_epoch_save_due(trainer, batch_index, len(loader)):
            saving = time.perf_counter()
            trainer.save(state, in_epoch)
            tick += time.perf_counter() - saving  # writing is not training: kept out of the training time

    synchronize(device)  # the clock reads finished work, not queued kernels
    epoch_s = resume["train_s"] + time.perf_counter() - tick
    state.train_s = start_train_s + epoch_s
    # The epoch's one collective also carries rank 0's clock (the others add 0): every rank leaves the
    # epoch with the same training time, as at an agreement step.
    clock = state.train_s if trainer.rank == 0 else 0.0
    totals = _all_reduce_sum(torch.stack([loss_sum, correct.double(),
                                          torch.tensor(float(count), device=device, dtype=torch.float64),
                                          torch.tensor(clock, device=device, dtype=torch.float64)]))
    if trainer.world > 1:
        state.train_s = totals[3].item()
    images = totals[2].item()
    return EpochTotals(epoch=epoch, train_loss=totals[0].item() / max(images, 1),
                       train_top1=100.0 * totals[1].item() / max(images, 1), images=images, seconds=epoch_s,
                       lr=lr, num_classes=getattr(trainer.model, "num_classes", None) or _classes(logits))


# ------------------------------------------------------------------------------------- evaluate and select

def evaluate_and_select(eval_model: nn.Module, val_loader, state: TrainingState, settings: TrainSettings,
                        device: torch.device) -> dict:
    """Validate epoch `state.epoch`; keep its weights when they are the best so far; note a target first met.

    Selection sees the validation split only. Returns the history entry's validation fields.
    """
    epoch = state.epoch
    val = evaluate(eval_model, val_loader, device, settings.amp, settings.channels_last)
    if state.best_top1 is None or val["top1"] > state.best_top1:  # a tie keeps the earlier epoch
        state.best_top1, state.best_epoch = val["top1"], epoch
        state.best_state = copy.deepcopy(eval_model.state_dict())
    target = settings.target_top1
    if target is not None and state.time_to_target is None and val["top1"] >= target:
        state.time_to_target = {"target_top1": target, "seconds": state.train_s, "epoch": epoch}
    return {"val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"]}


# ---------------------------------------------------------------------------------------------------- fit

def fit(model: nn.Module, train_loader, val_loader, test_loader, settings: TrainSettings,
        device: str | torch.device = "cpu", checkpoint_path: str | Path | None = None) -> TrainResult:
    """Train `model` under `settings.budget`, evaluating on validation after every epoch.

    Selection (best epoch) uses validation only; the test set is evaluated once at the end, on the best
    and on the last weights. With no validation split, selection is by the last epoch.
    """
    device = torch.device(device)
    rank, world = _world()
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = settings.make_optimizer(param_groups(model, settings.weight_decay, settings.decay_norm_and_bias),
                                        lr=settings.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")  # bf16 needs no loss scaling
    ema = None
    if settings.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True)

    steps_per_epoch = len(train_loader)
    batch_size = settings.batch_size * world
    macs_per_step = settings.train_macs_per_image * batch_size if settings.train_macs_per_image else None
    planned_steps = settings.budget.planned_steps(steps_per_epoch, macs_per_step, images_per_step=batch_size)

    state = _resume(checkpoint_path, settings.identity, model, optimizer, scaler, ema, device)
    state.machines.append({"machine": settings.machine, "from_step": state.step})

    train_model = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if settings.compile != "off":
        train_model = torch.compile(train_model, mode=None if settings.compile == "default" else settings.compile)
    eval_model = ema.module if ema is not None else model
    trainer = _Trainer(settings, model, train_model, ema, optimizer, scaler,
                       criterion=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), device=device,
                       rank=rank, world=world, planned_steps=planned_steps, checkpoint_path=checkpoint_path,
                       bar=_progress_bar(settings.progress_bar and rank == 0),
                       eta_from=(state.step + 1, state.train_s), eval_model=eval_model,
                       val_loader=val_loader)

    with _interrupt_flag() as interrupt:
        while trainer.fraction_done(state) < 1.0 and not state.diverged:
            totals = train_one_epoch(trainer, state, train_loader, interrupt)
            entry = _history_entry(totals, state)
            reason = divergence(totals.train_loss, totals.num_classes)
            if reason is not None:
                state.diverged, state.diverged_reason = True, reason
                log.warning("%s in epoch %d (lr=%.4g): stopping as diverged", reason, totals.epoch, totals.lr)
            elif val_loader is not None:
                entry.update(evaluate_and_select(eval_model, val_loader, state, settings, device))
            _record_epoch(state, entry, totals, settings, rank)
            finished = state.diverged or trainer.fraction_done(state) >= 1.0
            due = time.monotonic() - trainer.last_save >= settings.checkpoint_every_s
            trainer.save(state, in_epoch=None, write=finished or due)

    if rank == 0 and settings.after_training is not None and state.step and not state.diverged:
        _, words = settings.after_training(state.train_s / state.step, 0)
        log.info("training done: %d steps in %s; evaluation next, %s", state.step, duration(state.train_s), words)
    return _finish(model, eval_model, test_loader, val_loader, settings, device, state, planned_steps,
                   steps_per_epoch, batch_size)


def _resume(checkpoint_path, identity: str | None, model: nn.Module, optimizer, scaler, ema,
            device: torch.device) -> TrainingState:
    """A fresh state, or the checkpoint's, with weights, optimizer, scaler, EMA and RNG restored from it."""
    checkpoint = load_checkpoint(checkpoint_path, identity) if checkpoint_path else None
    if checkpoint is None:
        return TrainingState()
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    if ema is not None and checkpoint.get("ema") is not None:
        ema.load_state_dict(checkpoint["ema"])
    _set_rng_state(checkpoint["rng"], device)
    state = TrainingState.from_dict(checkpoint["progress"])
    log.info("resuming from %s at epoch %d, step %d", checkpoint_path, state.epoch, state.step)
    return state


def _mid_epoch_save_due(trainer: _Trainer, batch_index: int, batches: int) -> bool:
    """The time cadence has passed within an epoch (its last batch excepted: the epoch's end decides).

    One process only: ranks' clocks differ, so DDP replicas checkpoint at epoch ends and on a signal.
    """
    every = trainer.settings.checkpoint_every_s
    return (trainer.world == 1 and trainer.checkpoint_path is not None and every > 0
            and batch_index + 1 < batches and time.monotonic() - trainer.last_save >= every)


def _curve_point_due(trainer: _Trainer, batch_index: int, batches: int) -> bool:
    """After the batches that end each 1/val_per_epoch of an epoch (its end excepted: validated anyway)."""
    per_epoch = trainer.settings.val_per_epoch
    if per_epoch <= 1 or trainer.val_loader is None or trainer.world > 1:
        return False
    done = batch_index + 1
    return done < batches and any(done == batches * k // per_epoch for k in range(1, per_epoch))


def _validate_within_epoch(trainer: _Trainer, state: TrainingState, epoch_position: float) -> float:
    """One validation pass for the learning curve; returns its seconds, which the caller keeps out of the
    training clock. Evaluation changes no weight, no BatchNorm statistic and draws no random number."""
    synchronize(trainer.device)
    start = time.perf_counter()
    result = evaluate(trainer.eval_model, trainer.val_loader, trainer.device, trainer.settings.amp,
                      trainer.settings.channels_last)
    trainer.train_model.train()
    state.curve.append({"step": state.step, "epoch": round(epoch_position, 4), "val_top1": result["top1"],
                        "val_loss": result["loss"], "elapsed_s": state.train_s})
    return time.perf_counter() - start


def machine_steps(stretches: list[dict], final_step: int) -> list[dict]:
    """[{"machine", "steps"}] in order of first appearance: the steps of the final result each machine
    trained (a stretch lasts until the next one began; steps redone after an interruption count once)."""
    steps: dict = {}
    for stretch, following in zip(stretches, [*stretches[1:], {"from_step": final_step}]):
        done = max(following["from_step"] - stretch["from_step"], 0)
        steps[stretch["machine"]] = steps.get(stretch["machine"], 0) + done
    return [{"machine": machine, "steps": count} for machine, count in steps.items() if count or len(steps) == 1]


def _history_entry(totals: EpochTotals, state: TrainingState) -> dict:
    """The epoch's line in the history; the validation fields stay None when it diverged or has no validation."""
    return {"epoch": totals.epoch, "train_loss": _finite_or_none(totals.train_loss),
            "train_top1": totals.train_top1, "val_loss": None, "val_top1": None, "val_top5": None,
            "lr": totals.lr, "epoch_s": totals.seconds,
            "img_per_s": totals.images / totals.seconds if totals.seconds > 0 else None,
            "elapsed_s": state.train_s, "step": state.step}


def _record_epoch(state: TrainingState, entry: dict, totals: EpochTotals, settings: TrainSettings,
                  rank: int) -> None:
    """The epoch is over: its entry into the history and to `on_epoch`, one log line, the next epoch's number."""
    state.history.append(entry)
    if settings.on_epoch is not None and rank == 0:
        settings.on_epoch(entry)
    state.epoch += 1
    if rank == 0:
        log.info("epoch %d  train_loss %s  train_top1 %.2f  val_top1 %s  lr %.4g  %.1fs  %.0f img/s",
                 totals.epoch, _fmt(entry["train_loss"]), entry["train_top1"], _fmt(entry["val_top1"]), totals.lr,
                 totals.seconds, entry["img_per_s"] or 0.0)


def _finish(model, eval_model, test_loader, val_loader, settings, device, state: TrainingState, planned_steps,
            steps_per_epoch, batch_size) -> TrainResult:
    history = state.history
    images = state.step * batch_size
    train = {
        "budget": settings.budget.as_dict(),
        "planned_steps": planned_steps,
        "epochs": len(history),
        "epochs_fractional": state.step / steps_per_epoch,
        "steps": state.step,
        "batch_size": batch_size,
        "wall_s": state.train_s,
        # the warm-up step is outside train_s, so its images are outside the rate too
        "img_per_s": (images - (state.warmup_images or 0)) / state.train_s if state.train_s > 0 else None,
        "step_ms": 1000.0 * state.train_s / state.step if state.step else None,
        "final_lr": history[-1]["lr"] if history else None,
        "warmup_s": state.warmup_s,
        "diverged_reason": state.diverged_reason,
        "time_to_target": state.time_to_target,
        "machines": machine_steps(state.machines, state.step),
        "val_curve": state.curve,
    }
    train["budget_consumed"] = budget_consumed(Usage(
        steps=state.step, epochs=train["epochs_fractional"], seconds=state.train_s, images=images,
        macs=settings.train_macs_per_image * images if settings.train_macs_per_image else None))
    selection = "val" if val_loader is not None else "last"
    metrics = {"selection": selection, "best_epoch": None, "val_top1": None, "val_top5": None,
               "test_top1": None, "test_top5": None, "test_top1_last": None, "test_top5_last": None}
    if state.diverged:
        return TrainResult("diverged", history, metrics, train, model)

    outcomes = []
    if _world()[0] == 0:
        log.info("evaluating the test set (the last weights%s)",
                 " and the best on validation" if selection == "val" and state.best_epoch != history[-1]["epoch"]
                 else "")
    last = evaluate(eval_model, test_loader, device, settings.amp, settings.channels_last, outcomes)
    metrics.update(test_top1_last=last["top1"], test_top5_last=last["top5"])
    if selection == "val" and state.best_state is not None:
        best_epoch = state.best_epoch
        if best_epoch != history[-1]["epoch"]:
            eval_model.load_state_dict(state.best_state)
            outcomes = []
            best = evaluate(eval_model, test_loader, device, settings.amp, settings.channels_last, outcomes)
        else:
            best = last
        best_entry = next(h for h in history if h["epoch"] == best_epoch)
        metrics.update(best_epoch=best_epoch, val_top1=best_entry["val_top1"], val_top5=best_entry["val_top5"],
                       test_top1=best["top1"], test_top5=best["top5"])
    else:
        metrics.update(best_epoch=history[-1]["epoch"], test_top1=last["top1"], test_top5=last["top5"])
    test_outcomes = tuple(torch.cat(part).numpy() for part in zip(*outcomes))
    return TrainResult("complete", history, metrics, train, eval_model, test_outcomes)  # the selected weights


def _log_eta(state: TrainingState, settings: TrainSettings, planned_steps: int | None, start: tuple,
             steps_per_epoch: int | None = None) -> None:
    """One line after the first timed steps: when the run will end, evaluation included, and a hint when that
    is far off."""
    step_s = (state.train_s - start[1]) / max(state.step - start[0], 1)
    remaining = settings.budget.remaining_s(state.step, state.train_s, planned_steps, step_s)
    after = getattr(settings, "after_training", None)
    evaluation, then = 0.0, " (evaluation extra)"
    if after is not None:
        # the epoch under way validates too; a seconds budget has no step plan, so only that one is counted
        epochs_left = (-(-planned_steps // steps_per_epoch) - state.epoch if planned_steps and steps_per_epoch
                       else 1)
        evaluation, words = after(step_s, max(epochs_left, 1))
        then = f"; then evaluation, {words}"
    end = time.strftime("%H:%M", time.localtime(time.time() + remaining + evaluation))
    log.info("estimated training time left: %s (%.0f ms per step)%s; ending about %s",
             duration(remaining), 1000 * step_s, then, end)
    if remaining > 3600:
        log.info("over an hour: train=quick or a smaller train.budget.* gives a run sized for this machine")


def divergence(train_loss: float, num_classes: int | None) -> str | None:
    """Why an epoch's mean training loss means the run has diverged, or None."""
    if not math.isfinite(train_loss):
        return "non-finite training loss"
    if num_classes and num_classes > 1 and train_loss > DIVERGED_LOSS_FACTOR * math.log(num_classes):
        return (f"training loss {train_loss:.3g} above {DIVERGED_LOSS_FACTOR:g} x chance level "
                f"(ln {num_classes} = {math.log(num_classes):.3g})")
    return None


def _classes(logits) -> int | None:
    return int(logits.shape[1]) if logits is not None and logits.ndim == 2 else None


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.4f}"


def _bar_total(trainer: _Trainer, state: TrainingState, loader, resume: dict) -> int:
    """The batches this epoch will take: the whole loader, or fewer when the budget ends inside the epoch.

    A steps budget of 40 drew `8/351` with the epoch's time left beside it, while the run ended at 40.
    A seconds budget has no step plan, so its bar counts the epoch.
    """
    batches = len(loader)
    if trainer.planned_steps is None:
        return batches
    return max(0, min(batches, resume["batches"] + trainer.planned_steps - state.step))


def _progress_bar(enabled: bool):
    """A tqdm bar per epoch on a terminal; plain iteration (and one log line per epoch) otherwise."""
    if not enabled:
        return lambda loader, epoch, total: loader
    import os
    import sys

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        sized = size.columns > 0 and size.lines > 0
    except (OSError, ValueError):
        sized = False
    # A terminal that reports no size (a fresh pseudo-terminal, some consoles) makes tqdm draw nothing at all
    fixed = {} if sized else {"ncols": 80, "nrows": 24}

    def bar(loader, epoch, total):
        # Log lines (the ETA, warnings) go above the bar through tqdm, not onto the end of its line.
        with logging_redirect_tqdm(), tqdm(loader, total=total, desc=f"epoch {epoch}", leave=False,
                                           dynamic_ncols=sized, **fixed) as batches:
            yield from batches

    return bar
