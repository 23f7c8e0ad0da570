"""The training loop: one recipe, one budget, checkpoints at every epoch end, resume that is exact.

Reads top to bottom: settings -> optimizer -> one epoch -> evaluation -> `fit`, which ties them together
under a budget. Nothing here knows about Hydra; the entry point hands in plain values and callables.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from archbench.train.budget import Budget
from archbench.train.checkpoint import load_checkpoint, save_checkpoint

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


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was saved and the same command resumes the run."""


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
    amp: str = "off"  # off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    target_top1: float | None = None
    on_epoch: Callable[[dict], None] | None = None  # each history entry, e.g. to an experiment logger
    identity: str | None = None  # the run's fingerprint: a checkpoint of another identity is never resumed
    train_macs_per_image: float | None = None  # needed by MACs budgets and recorded as consumed compute
    progress_bar: bool = False

    def __post_init__(self):
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"train.amp={self.amp!r} is not one of: off, bf16, fp16")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate {self.lr!r} must be a positive number (train.optimizer.lr)")


@dataclass
class TrainResult:
    status: str  # complete | diverged
    history: list[dict]
    metrics: dict
    train: dict
    model: nn.Module = field(repr=False)


# ------------------------------------------------------------------------------------------- optimizer

def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Weight decay on weights only: decaying BatchNorm scales and biases hurts accuracy (Goyal et al. 2017)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _topk_correct(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top.eq(y[:, None])
    return hit[:, :1].sum(), hit.sum()


# ---------------------------------------------------------------------------------------------- evaluate

@torch.inference_mode()
def evaluate(model: nn.Module, loader, device: torch.device, amp: str = "off", channels_last: bool = False) -> dict:
    """Loss, top-1 and top-5 (percent) over a whole loader; sums stay on the device until the end."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    top1 = torch.zeros((), device=device, dtype=torch.long)
    top5 = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        c1, c5 = _topk_correct(logits, y)
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
    flag = {"signal": None, "previous": {}}
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


def _collective_decision(interrupt: dict, progress: dict, loss, check_finite: bool, device, rank: int) -> bool:
    """DDP: every rank takes the same stop decisions, from rank 0's clock; returns True when a loss is not finite.

    One small all-reduce (max) per step of [interrupted anywhere, rank 0's training time, non-finite
    anywhere], so ranks never leave the loop at different steps (a collective would hang) and a
    seconds budget's schedule gives every replica the same learning rate.
    """
    nonfinite = check_finite and not torch.isfinite(loss).item()
    state = torch.tensor([float(interrupt["signal"] is not None), progress["train_s"] if rank == 0 else 0.0,
                          float(nonfinite)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(state, op=torch.distributed.ReduceOp.MAX)
    if state[0].item() > 0 and interrupt["signal"] is None:
        interrupt["signal"] = signal.SIGTERM  # another rank was signalled: stop here too, at the same step
    progress["train_s"] = float(state[1].item())
    return state[2].item() > 0


# ---------------------------------------------------------------------------------------------------- fit

def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


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
    planned_steps = settings.budget.planned_steps(steps_per_epoch, macs_per_step)

    # Everything that must survive an interruption lives in `progress` and goes into the checkpoint.
    progress = {"epoch": 0, "step": 0, "train_s": 0.0, "history": [], "best_top1": None, "best_epoch": None,
                "best_state": None, "time_to_target": None, "in_epoch": None, "diverged": False,
                "diverged_reason": None, "warmup_s": None}
    checkpoint = load_checkpoint(checkpoint_path, settings.identity) if checkpoint_path else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        if ema is not None and checkpoint.get("ema") is not None:
            ema.load_state_dict(checkpoint["ema"])
        _set_rng_state(checkpoint["rng"], device)
        progress = checkpoint["progress"]
        log.info("resuming from %s at epoch %d, step %d", checkpoint_path, progress["epoch"], progress["step"])

    def save(in_epoch: dict | None) -> None:
        if checkpoint_path is None or rank != 0:
            return
        progress["in_epoch"] = in_epoch
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "rng": _rng_state(device),
            "progress": progress, "step": progress["step"], "identity": settings.identity,
        })

    def fraction_done() -> float:
        return settings.budget.progress(progress["step"], progress["train_s"], planned_steps)

    train_model = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if settings.compile:
        train_model = torch.compile(train_model)
    eval_model = ema.module if ema is not None else model
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    bar = _progress_bar(settings.progress_bar and rank == 0)

    eta_from = (progress["step"] + 1, progress["train_s"])  # the estimate starts after the warm-up step
    eta_at_step = progress["step"] + 1 + ETA_AFTER_STEPS
    warmed_up = False  # per process: a resumed run compiles again, and that is kept out of training time too
    with _interrupt_flag() as interrupt:
        while fraction_done() < 1.0 and not progress["diverged"]:
            epoch = progress["epoch"]
            resume = progress["in_epoch"] or {"batches": 0, "loss_sum": 0.0, "top1": 0, "count": 0, "train_s": 0.0}
            train_loader.set_epoch(epoch)
            train_model.train()
            loss_sum = torch.tensor(resume["loss_sum"], device=device, dtype=torch.float64)
            correct = torch.tensor(resume["top1"], device=device, dtype=torch.long)
            count = resume["count"]
            epoch_s = resume["train_s"]
            start_train_s = progress["train_s"] - epoch_s
            tick = time.perf_counter()
            lr = settings.lr * settings.schedule(min(fraction_done(), 1.0))
            logits = None
            for batch_index, (x, y) in enumerate(bar(train_loader, epoch)):
                if batch_index < resume["batches"]:
                    continue  # replay the deterministic order up to where the interrupted epoch stopped
                if fraction_done() >= 1.0:
                    break
                lr = settings.lr * settings.schedule(fraction_done())
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if settings.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, settings.amp):
                    logits = train_model(x)
                    loss = criterion(logits, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings.grad_clip_norm:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(model)
                loss_sum += loss.detach().double() * y.numel()
                correct += logits.detach().argmax(1).eq(y).sum()
                count += y.numel()
                progress["step"] += 1
                if not warmed_up:
                    # The first step compiles, autotunes and grows allocators: timed apart, outside the
                    # training time, img/s and a seconds budget, so compilation never eats the budget.
                    _synchronize(device)
                    progress["warmup_s"] = (progress.get("warmup_s") or 0.0) + time.perf_counter() - tick
                    warmed_up = True
                    progress["warmup_images"] = progress.get("warmup_images", 0) + y.numel() * world
                    tick = time.perf_counter()
                epoch_s = resume["train_s"] + time.perf_counter() - tick
                progress["train_s"] = start_train_s + epoch_s
                check_finite = progress["step"] % DIVERGENCE_CHECK_EVERY == 0
                if world > 1:
                    if _collective_decision(interrupt, progress, loss, check_finite, device, rank):
                        break
                elif check_finite and not torch.isfinite(loss).item():
                    break
                if progress["step"] == eta_at_step and rank == 0:
                    _log_eta(progress, settings, planned_steps, eta_from)
                if interrupt["signal"] is not None:
                    save({"batches": batch_index + 1, "loss_sum": loss_sum.item(), "top1": correct.item(),
                          "count": count, "train_s": epoch_s})
                    _hand_over(interrupt)
                    raise TrainingInterrupted(f"signal {interrupt['signal']} at epoch {epoch}, step "
                                              f"{progress['step']}; checkpoint saved to {checkpoint_path}")

            _synchronize(device)  # the clock reads finished work, not queued kernels
            epoch_s = resume["train_s"] + time.perf_counter() - tick
            progress["train_s"] = start_train_s + epoch_s
            totals = _all_reduce_sum(torch.stack([loss_sum, correct.double(),
                                                  torch.tensor(float(count), device=device, dtype=torch.float64)]))
            train_loss = totals[0].item() / max(totals[2].item(), 1)
            entry = {"epoch": epoch, "train_loss": _finite_or_none(train_loss),
                     "train_top1": 100.0 * totals[1].item() / max(totals[2].item(), 1), "val_loss": None,
                     "val_top1": None, "val_top5": None, "lr": lr, "epoch_s": epoch_s,
                     "img_per_s": totals[2].item() / epoch_s if epoch_s > 0 else None,
                     "elapsed_s": progress["train_s"], "step": progress["step"]}
            reason = divergence(train_loss, num_classes=getattr(model, "num_classes", None) or _classes(logits))
            if reason is not None:
                progress["diverged"], progress["diverged_reason"] = True, reason
                log.warning("%s in epoch %d (lr=%.4g): stopping as diverged", reason, epoch, lr)
            elif val_loader is not None:
                val = evaluate(eval_model, val_loader, device, settings.amp, settings.channels_last)
                entry.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
                if progress["best_top1"] is None or val["top1"] > progress["best_top1"]:
                    progress["best_top1"], progress["best_epoch"] = val["top1"], epoch
                    progress["best_state"] = copy.deepcopy(eval_model.state_dict())
                target = settings.target_top1
                if target is not None and progress["time_to_target"] is None and val["top1"] >= target:
                    progress["time_to_target"] = {"target_top1": target, "seconds": progress["train_s"],
                                                  "epoch": epoch}
            progress["history"].append(entry)
            if settings.on_epoch is not None and rank == 0:
                settings.on_epoch(entry)
            progress["epoch"] += 1
            if rank == 0:
                log.info("epoch %d  train_loss %s  train_top1 %.2f  val_top1 %s  lr %.4g  %.1fs  %.0f img/s",
                         epoch, _fmt(entry["train_loss"]), entry["train_top1"], _fmt(entry["val_top1"]), lr,
                         epoch_s, entry["img_per_s"] or 0.0)
            save(None)

    return _finish(model, eval_model, test_loader, val_loader, settings, device, progress, planned_steps,
                   steps_per_epoch, batch_size)


def _finish(model, eval_model, test_loader, val_loader, settings, device, progress, planned_steps,
            steps_per_epoch, batch_size) -> TrainResult:
    history = progress["history"]
    images = progress["step"] * batch_size
    train = {
        "budget": settings.budget.as_dict(),
        "planned_steps": planned_steps,
        "epochs": len(history),
        "epochs_fractional": progress["step"] / steps_per_epoch,
        "steps": progress["step"],
        "batch_size": batch_size,
        "wall_s": progress["train_s"],
        # the warm-up step is outside train_s, so its images are outside the rate too
        "img_per_s": (images - progress.get("warmup_images", 0)) / progress["train_s"] if progress["train_s"] > 0 else None,
        "step_ms": 1000.0 * progress["train_s"] / progress["step"] if progress["step"] else None,
        "final_lr": history[-1]["lr"] if history else None,
        "warmup_s": progress.get("warmup_s"),
        "diverged_reason": progress.get("diverged_reason"),
        "time_to_target": progress["time_to_target"],
    }
    train["budget_consumed"] = {
        "epochs": train["epochs_fractional"], "steps": progress["step"], "seconds": progress["train_s"],
        "macs": settings.train_macs_per_image * images if settings.train_macs_per_image else None,
    }
    selection = "val" if val_loader is not None else "last"
    metrics = {"selection": selection, "best_epoch": None, "val_top1": None, "val_top5": None,
               "test_top1": None, "test_top5": None, "test_top1_last": None, "test_top5_last": None}
    if progress["diverged"]:
        return TrainResult("diverged", history, metrics, train, model)

    last = evaluate(eval_model, test_loader, device, settings.amp, settings.channels_last)
    metrics.update(test_top1_last=last["top1"], test_top5_last=last["top5"])
    if selection == "val" and progress["best_state"] is not None:
        best_epoch = progress["best_epoch"]
        if best_epoch != history[-1]["epoch"]:
            eval_model.load_state_dict(progress["best_state"])
            best = evaluate(eval_model, test_loader, device, settings.amp, settings.channels_last)
        else:
            best = last
        best_entry = next(h for h in history if h["epoch"] == best_epoch)
        metrics.update(best_epoch=best_epoch, val_top1=best_entry["val_top1"], val_top5=best_entry["val_top5"],
                       test_top1=best["top1"], test_top5=best["top5"])
    else:
        metrics.update(best_epoch=history[-1]["epoch"], test_top1=last["top1"], test_top5=last["top5"])
    return TrainResult("complete", history, metrics, train, eval_model)  # the selected weights


def _log_eta(progress: dict, settings: TrainSettings, planned_steps: int | None, start: tuple) -> None:
    """One line after the first timed steps: when the run will end, and a hint when that is far off."""
    step_s = (progress["train_s"] - start[1]) / max(progress["step"] - start[0], 1)
    remaining = (settings.budget.value - progress["train_s"] if planned_steps is None
                 else (planned_steps - progress["step"]) * step_s)
    end = time.strftime("%H:%M", time.localtime(time.time() + remaining))
    log.info("estimated training time left: %.0f min (%.0f ms per step), ending about %s (evaluation extra)",
             remaining / 60, 1000 * step_s, end)
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


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.4f}"


def _progress_bar(enabled: bool):
    """A tqdm bar per epoch on a terminal; plain iteration (and one log line per epoch) otherwise."""
    if not enabled:
        return lambda loader, epoch: loader
    from tqdm import tqdm
    return lambda loader, epoch: tqdm(loader, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
