"""The dry run (`dry_run=true`): everything a run would do before training, and nothing under results_dir.

`preflight` makes one job's row of the plan; `format_plan` the table of a sweep's rows.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time

import torch

from archbench.base.device import synchronize
from archbench.base.files import WriteError, check_writable
from archbench.data.registry import known_train_images
from archbench.measure import profile_complexity
from archbench.record import this_machine
from archbench.run import phases
from archbench.run.assemble import batch_too_large, create_model, load_data, profile_data_info
from archbench.run.execute import format_value
from archbench.run.existing import finished_record, other_machines_note
from archbench.run.spec import RunSpec, resolve_device, validate
from archbench.run.training import CHECKPOINT_FILE
from archbench.settings import DataSettings
from archbench.train.checkpoint import load_checkpoint_info
from archbench.train.loop import autocast_context, param_groups
from archbench.train.precision import cuda_auto_rule


# A CPU run planned longer than this gets a hint to use a smaller budget before it starts.
LONG_RUN_S = 3600
PREFLIGHT_TIMED_STEPS = 2  # after one untimed step: enough for an estimate, cheap for a wide study


def preflight(spec: RunSpec, timed_steps: int = PREFLIGHT_TIMED_STEPS) -> dict:
    """Everything a run would do before training, and nothing under results_dir: the `dry_run` row.

    Validates, finds the data (naming what is missing), builds model, optimizer and schedule, runs one
    forward and backward step at the real batch size (synthetic values; halved if it does not fit),
    times a few steps on this device and estimates the whole run. `problem` is None when it would run.
    """
    row = {"model": spec.model.name, "data": spec.dataset_name, "seed": spec.seed, "variant": None,
           "action": "-", "planned_steps": None, "est_s": None, "problem": None}
    try:
        validate(spec)
        row["variant"] = spec.variant
        row["action"] = _planned_action(spec)
        row["problem"] = (spec.tuning or {}).get("problem")
        if row["action"] == "skip (complete)":
            return row
        row["note"] = other_machines_note(spec, this_machine(resolve_device(spec.device)))
        try:
            check_writable(spec.results_dir)  # the real run would stop here; the plan says so
        except WriteError as err:
            row["problem"] = "; ".join(filter(None, [row["problem"], str(err)]))
        data_info, n_train, problem = _preflight_data(spec)
        row["problem"] = "; ".join(filter(None, [row["problem"], problem])) or None
        if spec.task == "profile":
            model, _, input_shape = create_model(spec, data_info)
            with torch.inference_mode():
                model.eval()(torch.zeros(input_shape))
            return row
        step_s, batch, note, train_macs = _time_steps(spec, data_info, timed_steps)
        if note:
            row["problem"] = "; ".join(filter(None, [row["problem"], note]))
        recipe = spec.recipe
        steps_per_epoch = max(n_train // recipe.batch_size, 1)
        macs_per_step = train_macs * recipe.batch_size if train_macs is not None else None
        planned = recipe.budget.planned_steps(steps_per_epoch, macs_per_step, images_per_step=recipe.batch_size)
        row["planned_steps"] = planned
        train_s = recipe.budget.planned_seconds(planned, step_s)
        epochs = (planned or steps_per_epoch) / steps_per_epoch
        # Validation every epoch, then the test set, latency and the evaluation after training: a 3-step run
        # spends nearly all its time there, so the estimate is of the whole run, not of its training.
        val_size, test_size = data_info.get("val_size") or 0, data_info.get("test_size") or 0
        passes = math.ceil(epochs) * recipe.val_per_epoch  # train.val_per_epoch passes in every epoch
        after = [phases.Phase("validation", images=passes * val_size)] + \
            phases.after_training(spec, val_size, test_size, data_info["image_size"])
        row["eval_s"] = sum(p.seconds(phases.forward_s(step_s, recipe.batch_size)) for p in after)
        row["evaluates_after_train"] = spec.evaluate is not None and spec.evaluate.after_train
        row["est_s"] = train_s + row["eval_s"]
        row["epochs"] = epochs
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, RuntimeError) as err:
        row["problem"] = "; ".join(filter(None, [row["problem"], f"{type(err).__name__}: {err}"]))
    return row


def _planned_action(spec: RunSpec) -> str:
    if not spec.force and finished_record(spec) is not None:
        return "skip (complete)"
    checkpoint = spec.record_dir / CHECKPOINT_FILE
    if checkpoint.exists() and not spec.force:
        step = load_checkpoint_info(checkpoint, spec.fingerprint)
        if step is not None:
            return f"resume at step {step}"
    return "run"


@functools.lru_cache(maxsize=8)
def _cached_dataset(key: str):
    return load_data(DataSettings(**json.loads(key)))


def _preflight_data(spec: RunSpec) -> tuple[dict, int, str | None]:
    """(shape info, training images, problem): the real dataset when present, its config's shape when not."""
    info = profile_data_info(spec)
    if spec.task == "profile":
        return info, 0, None
    key = json.dumps({"name": spec.data.name, "label": spec.data.label, "order_seed": spec.data.order_seed,
                      "load": spec.data.load, "augment": spec.data.augment}, sort_keys=True, default=str)
    try:
        dataset = _cached_dataset(key)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        # The reader's declared official size, so a study can be planned on a machine that lacks the files.
        known = known_train_images(spec.data.name) or 0
        n_train = spec.data.load.get("train_size") or max(known - 5000, 0)
        return {**info, "val_size": 5000, "test_size": 10_000}, n_train, f"data: {err}"
    info.update(num_classes=dataset.num_classes, image_size=dataset.image_size, in_chans=dataset.in_chans,
                val_size=len(dataset.val.labels) if dataset.val is not None else 0, test_size=len(dataset.test.labels))
    n_train = len(dataset.train.labels)
    if n_train < spec.recipe.batch_size:
        raise ValueError(batch_too_large(spec, n_train))
    return info, n_train, None


_STEP_TIMES: dict[str, tuple] = {}


def _time_steps(spec: RunSpec, data_info: dict, timed_steps: int):
    """(seconds per step at the batch that fits, that batch, note, training MACs per image).

    Builds the model, optimizer and schedule, then one untimed step (compilation, autotuning) and
    `timed_steps` timed ones on synthetic values of the real shape, in the run's precision, layout and
    compile mode: an explicit train.amp/channels_last as given; `auto` (chosen by a probe when the run
    starts) is timed as bf16 + channels_last on a GPU with bf16 tensor cores, else fp32 NCHW. Cached per
    network, shape and numerics in this process: a study's seeds and tuning trials are timed once. `ARCHBENCH_PREFLIGHT_BATCH` caps the batch (the test suite
    checks every study this way on 2 cores).
    """
    recipe = spec.recipe
    input_shape = (1, data_info["in_chans"], data_info["image_size"], data_info["image_size"])
    # Speed depends on the network, shape, batch and numerics, not on the optimizer's values (trials share it),
    # nor measurably on the class count (one linear layer): CIFAR-10 and CIFAR-100 jobs share one timing.
    key = json.dumps([spec.model.identity(), input_shape, recipe.batch_size, recipe.amp,
                      recipe.channels_last, recipe.compile, recipe.optimizer.get("_target_"), spec.device,
                      recipe.budget.NEEDS_TRAIN_MACS], default=str)
    schedule = recipe.make_schedule()
    [schedule(p) for p in (0.0, 0.5, 1.0)]
    if key in _STEP_TIMES:
        return _STEP_TIMES[key]
    model, _, _ = create_model(spec, data_info)
    train_macs = None
    if recipe.budget.NEEDS_TRAIN_MACS:
        train_macs = profile_complexity(model, input_shape)["flops_train"] / 2
    device = resolve_device(spec.device)
    batch = min(recipe.batch_size, int(os.environ.get("ARCHBENCH_PREFLIGHT_BATCH", recipe.batch_size)))
    amp, channels_last = _planned_precision(recipe, device)
    model.to(device)  # before the optimizer takes its parameters
    optimizer = recipe.make_optimizer()(param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias),
                                        lr=recipe.scaled_lr())
    times, batch, shrunk = time_train_steps(model, optimizer, input_shape, data_info["num_classes"], batch, amp,
                                            channels_last, device, timed_steps, recipe.compile)
    note = f"batch {recipe.batch_size} does not fit in memory; tried {batch}" if shrunk else None
    step_s = (sum(times[1:]) / max(len(times) - 1, 1) if timed_steps else times[0]) * recipe.batch_size / batch
    _STEP_TIMES[key] = (step_s, batch, note, train_macs)
    return _STEP_TIMES[key]


def time_train_steps(model, optimizer, input_shape, num_classes: int, batch: int, amp: str, channels_last: bool,
                     device: str, timed_steps: int, compile_mode: str = "off") -> tuple[list[float], int, bool]:
    """(seconds of each step, the batch that fit, whether it had to shrink): one untimed step (compilation,
    autotuning), then `timed_steps` training steps on synthetic values of the real shape, in the given
    precision and layout. Halves the batch while it does not fit in memory. The dry run's estimate and the
    time-to-accuracy projection (archbench.run.project) both time steps here."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    step_model = model
    if compile_mode != "off":
        step_model = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    autocast = autocast_context(torch.device(device), amp)
    shrunk = False
    while True:
        try:
            x = torch.randn(batch, *input_shape[1:], device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, num_classes, (batch,), device=device)
            times = []
            for _ in range(1 + timed_steps):
                tick = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = torch.nn.functional.cross_entropy(step_model(x), y)
                loss.backward()  # fp16 loss scaling changes no step time worth planning for
                optimizer.step()
                synchronize(device)
                times.append(time.perf_counter() - tick)
            return times, batch, shrunk
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            shrunk = True


def _planned_precision(recipe, device: str) -> tuple[str, bool]:
    """(amp, channels_last) that the preflight times: the run's, with `auto` resolved by the stated rule."""
    amp, channels_last = recipe.amp, recipe.channels_last
    if "auto" not in (amp, channels_last):
        return amp, bool(channels_last)
    rule = cuda_auto_rule(device, amp, channels_last)
    if rule is not None:
        return rule
    # elsewhere `auto` is a probe when the run starts; the plan times the fp32 NCHW it starts from
    return ("off" if amp == "auto" else amp), channels_last is True


def format_plan(rows: list[dict]) -> str:
    """The dry-run table, then the total estimated time and the count of jobs with problems."""
    header = ["job", "model", "data", "seed", "variant", "action", "planned steps", "est. time", "problem"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        cells = [str(i), row.get("model"), row.get("data"), row.get("seed"), row.get("variant") or "-",
                 row.get("action"), format_value(row.get("planned_steps"), "{:,}"), _duration(row.get("est_s")),
                 (row.get("problem") or "").replace("\n", " ")[:300]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    total = sum(r.get("est_s") or 0 for r in rows if (r.get("action") or "").startswith(("run", "resume")))
    problems = sum(1 for r in rows if r.get("problem"))
    evaluation = sum(r.get("eval_s") or 0 for r in rows if (r.get("action") or "").startswith(("run", "resume")))
    skip = (f"; {phases.SKIP_HINT} for a quick check" if any(r.get("evaluates_after_train") for r in rows) else "")
    lines += ["", f"{len(rows)} job(s); estimated time on this device: {_duration(total)} ({total / 3600:.1f} h) "
                  f"run one after another, {_duration(evaluation)} of it evaluation (validation, the test set, "
                  f"latency{', calibration and corruptions' if skip else ''}{skip}); {problems} with problems"]
    notes: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("note"):
            notes.setdefault(row["note"], []).append(i)
    lines += [f"note (job{'s' if len(jobs) > 1 else ''} {_job_list(jobs)}): {note}" for note, jobs in notes.items()]
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        lines.append(f"note: the 1-minute load average is {load:.1f} on {cores} cores: other work shares this "
                     "machine, so these timings (and the estimate) are pessimistic; rerun on an idle machine")
    if total > LONG_RUN_S and not any("cuda" in str(r.get("device", "")) for r in rows):
        lines.append("over an hour here: train=quick or a smaller train.budget.* gives a CPU-sized run")
    return "\n".join(lines)


def _job_list(jobs: list[int]) -> str:
    """'0-5' for consecutive job numbers, else '0, 2, 4'."""
    if len(jobs) > 2 and jobs == list(range(jobs[0], jobs[-1] + 1)):
        return f"{jobs[0]}-{jobs[-1]}"
    return ", ".join(map(str, jobs))


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
