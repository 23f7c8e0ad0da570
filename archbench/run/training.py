"""The training stage of a run: loaders, the precision that trains, the loop, and what training measured."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from archbench.base.files import atomic_write_json, exclusive_lock
from archbench.data import make_loaders
from archbench.measure import peak_memory_bytes, reset_peak_memory
from archbench.measure.energy import EnergyMeter, inference_window, measure_energy
from archbench.measure.peak import PEAK_INCLUDES_CPU, PEAK_INCLUDES_CUDA, allocated_bytes
from archbench.measure.utilisation import add_utilisation
from archbench.record import now_iso, this_machine
from archbench.run import distributed, phases
from archbench.run.assemble import Built
from archbench.run.distributed import from_rank_0, init_distributed
from archbench.run.spec import RunSpec
from archbench.settings import numerics_identity
# The loop and the precision probe are called through their modules, so a test can stand in for either.
from archbench.train import loop, precision
from archbench.train.checkpoint import checkpoint_numerics

log = logging.getLogger("archbench")
# Where an unfinished run keeps its state, beside its record: the same command resumes from it.
CHECKPOINT_FILE = "checkpoint.ckpt"


def train(spec: RunSpec, built: Built, record: dict, tracker=None):
    """Train the built model under the recipe; adds precision, energy and utilisation to `record`."""
    recipe = spec.recipe
    world = distributed.world_size()
    rank = distributed.rank()
    device = built.device
    if world > 1:
        device = init_distributed(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = not recipe.deterministic  # fastest kernels for fixed shapes
    train_loader, val_loader, test_loader = make_loaders(
        built.dataset, batch_size=recipe.batch_size, eval_batch_size=recipe.eval_batch_size, device=device,
        augment=spec.data.augment, seed=spec.seed, order_seed=spec.data.order_seed, rank=rank, world_size=world)
    reset_peak_memory(device)  # after the loaders: a dataset moved to the GPU is not training memory...
    resident = allocated_bytes(device)  # ...and is subtracted, since it stays allocated under the peak
    meter = EnergyMeter(device) if rank == 0 else None
    if meter is not None and meter.skipped and device.startswith("cuda"):
        log.warning("energy left out of the record: %s", meter.skipped)
    flops_train = built.complexity.get("flops_train")
    amp, channels_last = _precision(spec, built, device, record)
    settings = recipe.train_settings(
        amp=amp, channels_last=channels_last, world_size=world, identity=spec.fingerprint,
        machine=this_machine(device),
        on_epoch=tracker.log_epoch if tracker is not None else None,
        # Training MACs per image = FlopCounterMode's forward+backward FLOPs / 2 (one MAC = two FLOPs).
        train_macs_per_image=flops_train / 2 if flops_train else None, progress_bar=spec.progress_bar,
        after_training=_after_training(spec, built, recipe.batch_size))
    steps_per_epoch = len(train_loader)
    planned = recipe.budget.planned_steps(steps_per_epoch, settings.train_macs_per_image * recipe.batch_size * world
                                          if settings.train_macs_per_image else None,
                                          images_per_step=recipe.batch_size * world)
    log.info("plan: %s on %s (%d training images), recipe %s, budget %s = %s steps of batch %d, lr %.4g, "
             "%s, device %s", spec.model.name, built.data_info.get("label") or spec.dataset_name,
             len(built.dataset.train.labels), recipe.name, recipe.budget,
             planned if planned is not None else "as many", recipe.batch_size, settings.lr,
             f"precision {amp}, channels_last {channels_last}", device)
    try:
        window_start = meter.read() if meter is not None else None
        result = loop.fit(built.model, train_loader, val_loader, test_loader, settings, device=device,
                          checkpoint_path=spec.record_dir / CHECKPOINT_FILE)
        train_window = (window_start, meter.read()) if meter is not None else None
    except loop.TrainingInterrupted as err:
        log.warning("%s; exiting with code %d: rerun the same command to resume from the checkpoint (a SLURM "
                    "requeue does so by itself)", err, loop.EXIT_INTERRUPTED)
        raise SystemExit(loop.EXIT_INTERRUPTED) from err
    train = result.train
    train["lr_scaled"] = settings.lr
    train["amp"], train["channels_last"], train["compile"] = amp, channels_last, recipe.compile
    record["numerics"] = numerics_identity(spec.identity, amp, channels_last, torch.__version__)
    train["world_size"] = world
    train["peak_mem_bytes"] = peak_memory_bytes(device) - (resident or 0)
    train["dataset_resident_bytes"] = resident
    train["peak_mem_includes"] = PEAK_INCLUDES_CUDA if device.startswith("cuda") else PEAK_INCLUDES_CPU
    if spec.defer_speed and device.startswith("cuda"):
        # A parallel sweep's jobs share this GPU, each with other neighbours: a figure of that sharing only.
        train["shared_device"] = ("trained beside the sweep's other jobs on the same GPU: its img/s, step time, "
                                  "MFU and energy are figures while sharing the device")
    if meter is not None:
        inference = inference_window(result.model, built.input_shape, device, recipe.eval_batch_size, amp,
                                     channels_last) if not meter.skipped else None
        # images this device trained (a DDP rank's share), the warm-up step's included: it is in the window
        record["energy"] = measure_energy(meter, train_window, result.train["steps"] * recipe.batch_size,
                                          inference)
    if rank == 0:  # only rank 0 writes the record: one peak measurement, not one per rank at once
        add_utilisation(train, flops_train, device, amp, world)
    record["dataset"]["selection"] = result.metrics["selection"]
    built.model = result.model
    return result


def _after_training(spec: RunSpec, built: Built, batch_size: int):
    """What the loop's ETA and end-of-training message add for validation and the phases after training."""
    info = built.data_info
    val_size, test_size = info.get("val_size") or 0, info.get("test_size") or 0
    after = phases.after_training(spec, val_size, test_size, built.input_shape[-1])

    def estimate(step_s: float, val_passes: int) -> tuple[float, str]:
        val_passes *= spec.recipe.val_per_epoch  # the learning curve's passes within each epoch count too
        validation = [phases.Phase(f"validation x {val_passes}", images=val_passes * val_size)] \
            if val_passes and val_size else []
        return phases.describe(validation + after, phases.forward_s(step_s, batch_size))

    return estimate


def _precision(spec: RunSpec, built: Built, device: str, record: dict) -> tuple[str, bool]:
    """The precision and memory layout that train: explicit values as given; `auto` by a measured probe."""
    recipe = spec.recipe
    amp, channels_last = recipe.amp, recipe.channels_last
    if amp != "auto" and channels_last != "auto":
        return amp, channels_last
    started = checkpoint_numerics(spec.record_dir / CHECKPOINT_FILE, spec.fingerprint)
    if started is not None:  # a resume, perhaps on another machine: what it learns must not change midway
        log.info("resuming in the precision the run started with (%s, channels_last %s), not a new probe",
                 started["amp"], started["channels_last"])
        return started["amp"], started["channels_last"]
    cache = Path(os.environ.get("ARCHBENCH_CACHE_DIR") or Path.home() / ".cache" / "archbench") / "precision"
    world = distributed.world_size()
    choice = None
    if distributed.rank() == 0:
        choice = _study_decision(spec, device)
        if choice is None:
            log.info("precision probe: timing a few training steps of fp32/bf16 x NCHW/channels_last (cached per "
                     "machine)")
            choice = precision.choose_precision(built.model, built.input_shape[1:], recipe.batch_size,
                                                built.data_info["num_classes"], device, amp=amp,
                                                channels_last=channels_last, cache_dir=cache,
                                                model_name=spec.model.name)
            choice = _decide_for_study(spec, device, choice)
    if world > 1:
        # Ranks probing on their own can choose differently under load (fp32 NCHW on one, bf16 channels_last
        # on another) and DDP then fails on mismatched parameter strides: rank 0 decides for all.
        choice = from_rank_0(choice)
    log.info("precision probe: %s", choice.get("reason"))
    record["train_precision"] = choice  # what ran, the probe's figures and why
    return choice["amp"], choice["channels_last"]


# Beside a model's seeds (its variant folder): what `auto` resolved to for the study, decided once.
STUDY_DECISION_FILE = "auto_precision.json"


def _study_decision(spec: RunSpec, device: str) -> dict | None:
    """The study's earlier decision for this model and setting, when this machine can follow it; None to probe.

    Seeds trained on other machines then share one numerics identity, so their accuracy pools; a machine
    without native arithmetic for the decided precision probes its own and says its runs stand apart."""
    decision = _read_decision(spec.record_dir.parent / STUDY_DECISION_FILE)
    if not decision:
        return None
    if not _followable(decision, device):
        log.warning("this machine cannot follow the study's precision decision (%s, made on %s): it has no native "
                    "%s, so it probes its own, and its runs form their own group (another numerics identity)",
                    decision["amp"], decision.get("decided_on"), decision["amp"])
        return None
    log.info("precision: the study's decision for %s, %s channels_last %s (made on %s), reused here",
             spec.model.name, decision["amp"], decision["channels_last"], decision.get("decided_on"))
    return {**decision, "reason": f"the study's decision, made once on {decision.get('decided_on')} and reused by "
                                  "every later run of this model and setting on any machine: "
                                  f"{decision.get('reason')}"}


def _decide_for_study(spec: RunSpec, device: str, choice: dict) -> dict:
    """Store the first probe's choice as the study's decision; a decision written meanwhile by a parallel
    job of the same model wins, so all its seeds train alike."""
    path = spec.record_dir.parent / STUDY_DECISION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(path.name + ".lock"), wait=True):
        decision = _read_decision(path)
        if decision is not None and not _followable(decision, device):
            return choice  # said when it was read: this machine's runs stand apart
        if decision is None:
            decision = {"amp": choice["amp"], "channels_last": choice["channels_last"],
                        "decided_on": this_machine(device), "decided_at": now_iso(), "reason": choice.get("reason")}
            atomic_write_json(path, decision)
            return choice
    log.info("precision: a parallel job decided first for the study (%s, channels_last %s); following it",
             decision["amp"], decision["channels_last"])
    return {**choice, "amp": decision["amp"], "channels_last": decision["channels_last"],
            "reason": f"the study's decision, made on {decision.get('decided_on')} (this run's own probe: "
                      f"{choice.get('reason')})"}


def _read_decision(path: Path) -> dict | None:
    """A study decision file's contents; None when absent or unreadable (the next probe writes a good one)."""
    try:
        decision = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return decision if isinstance(decision, dict) and {"amp", "channels_last"} <= set(decision) else None


def _followable(decision: dict, device: str) -> bool:
    """Whether this machine computes the decided precision natively (fp32 everywhere, bf16 where native)."""
    if decision["amp"] in ("off", "fp32"):
        return True
    return precision.native_low_precision(torch.device(device))[0] == decision["amp"]
