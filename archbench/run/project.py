"""`python -m archbench.report project [results_dir=results/runs] [target=N] [budget_s=S] [study=NAME] [threads=N] [out=FILE.csv] [include_synthetic=true]`

Time to a target validation accuracy on this machine, projected from a study's learning curves: the steps
to the target come from the runs (any machine, pooled at one numerics identity: archbench.results.pooling),
the seconds per step from a brief probe here, in quiet (the dry run's timing path, in the precision and
layout the runs trained in, at their batch and threads). Prints per study: each model's steps to the target
with a 95% interval over its runs, this machine's step time, the projected time with its interval, the
measured time of runs made here, which model gets there first and, with `budget_s`, the best model within
that many seconds of training here. Nothing under results_dir changes.
"""
from __future__ import annotations

import math
import sys

import torch

from archbench import results
from archbench.base.device import cpu_model, machine_identity
from archbench.base.files import atomic_write_bytes
from archbench.base.keyvalue import parse_key_values
from archbench.base.timefmt import duration
from archbench.quiet import QuietSettings, measure_quietly
from archbench.record import hardware_label, read_record
from archbench.results.projection import curves, project
from archbench.run.preflight import time_train_steps
from archbench.run.remeasure import build_from_record
from archbench.settings import Recipe
from archbench.train.loop import param_groups

USAGE = __doc__.splitlines()[0].strip("`")
DEFAULTS = {"results_dir": "results/runs", "target": None, "budget_s": None, "study": None, "threads": None,
            "out": None, "timed_steps": 5, "include_synthetic": False}
EXIT_BAD_INPUT = 2


class ProjectError(ValueError):
    pass


def probe_step_s(record: dict, threads: int | None, timed_steps: int) -> tuple[float, str | None]:
    """(seconds per training step here, why the figure was taken under load or None) for `record`'s model,
    batch, precision and layout, with its threads unless `threads` is given; waits for a quiet machine."""
    train, config = record.get("train") or {}, record.get("config") or {}
    model, shape, _, create = build_from_record(record)
    threads = int(threads or config.get("threads") or (record.get("env") or {}).get("threads") or 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        try:
            recipe = Recipe.from_config(config.get("train") or {})
            optimizer = recipe.make_optimizer()(param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias),
                                                lr=recipe.lr)
            batch = int(train.get("batch_size") or recipe.batch_size)
        except ValueError:  # a record without a whole recipe: a step's time is the network's, not SGD's values
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            batch = int(train.get("batch_size") or 128)

        def timed():
            times, used, _ = time_train_steps(model, optimizer, shape, create["num_classes"], batch,
                                              train.get("amp") or "off", bool(train.get("channels_last")), "cpu",
                                              timed_steps)
            return {"step_s": min(times[1:]) * batch / used}

        result = measure_quietly(timed, QuietSettings.from_config(None), threads)
    finally:
        torch.set_num_threads(previous)
    loaded = result.get("under_load")
    return result["step_s"], (loaded or {}).get("reason") if loaded else None


def main(arguments=None) -> int:
    arguments = sys.argv[1:] if arguments is None else list(arguments)
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(f"usage: {USAGE}\n\n" + "\n".join(__doc__.splitlines()[2:]))
        return 0
    try:
        options = parse_key_values(arguments, DEFAULTS, usage=USAGE, booleans={"include_synthetic"},
                                   nullable={"target", "budget_s", "study", "threads", "out"}, error=ProjectError)
        table, notes = projection(**options)
    except (ProjectError, FileNotFoundError, ValueError) as error:
        print(f"archbench.report project: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_projection(table, notes))
    if options["out"]:
        atomic_write_bytes(options["out"], table.to_csv(index=False).encode())
        print(f"written to {options['out']}")
    return 0


def projection(results_dir, target=None, budget_s=None, study=None, threads=None, out=None, timed_steps=5,
               include_synthetic=False):
    """(table, notes): `archbench.results.projection.project` over the studies found, with this machine's
    step time probed once per study, model and variant."""
    target, budget_s = _number("target", target), _number("budget_s", budget_s)
    runs = results.load(results_dir, include_synthetic=include_synthetic)
    runs = runs[runs.task == "train"] if not runs.empty else runs
    if study is not None:
        runs = runs[runs.study == study]
    if runs.empty:
        raise ProjectError(f"no finished training runs under results_dir={results_dir}"
                           + (f" for study={study}" if study else "") + ": train a study first")
    step_s, notes = {}, []
    for (name, model, variant), group in runs.groupby(["study", "model", "variant"], sort=True):
        record = read_record(group.path.iloc[0])
        print(f"probing {model} ({name}): a few training steps here, after waiting for a quiet machine",
              file=sys.stderr, flush=True)
        try:
            step_s[(name, model, variant)], loaded = probe_step_s(record, threads, int(timed_steps))
        except ValueError as error:  # e.g. a model this archbench no longer builds: no projection for it
            notes.append(f"{model} ({name}): not probed here, so not projected ({error})")
            continue
        if loaded:
            notes.append(f"{model} ({name}): its step time here was taken under load ({loaded})")
    # This machine as the runs' labels name it, at the threads the runs recorded (as the probes used them):
    # record.this_machine's label for the CPU, without setting torch's threads a second time to read them back.
    recorded = runs.threads.dropna() if "threads" in runs else []
    label_threads = int(threads or (recorded.mode().iloc[0] if len(recorded) else torch.get_num_threads()))
    here = hardware_label("cpu", "cpu", cpu_model(), label_threads, machine_identity("cpu"))
    table = project(runs, curves(runs), step_s, here, target, budget_s)
    return table, [f"this machine: {here}"] + notes


def _number(key, value):
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ProjectError(f"{key}={value!r} must be a positive number, e.g. {key}=80")
    return number


def format_projection(table, notes) -> str:
    """The table as text, one block per study, then the notes."""
    lines = []
    for (study, data), group in table.groupby(["study", "data"], sort=False):
        target = group.target_top1.iloc[0]
        lines.append(f"{study} on {data}: time to {target:g}% validation top-1, projected onto this machine")
        lines.append(f"  {'model':24} {'reached':>7} {'steps to target (95% CI)':>28} {'s/step':>8} "
                     f"{'projected (95% CI)':>30} {'measured here':>14}")
        for row in group.itertuples():
            steps = "-" if math.isnan(row.steps) else (
                f"{row.steps:,.0f}" + ("" if math.isnan(row.steps_low) else f" ({row.steps_low:,.0f}-{row.steps_high:,.0f})"))
            projected = "-" if math.isnan(row.projected_s) else (
                duration(row.projected_s) + ("" if math.isnan(row.projected_low_s) else
                                             f" ({duration(row.projected_low_s)}-{duration(row.projected_high_s)})"))
            measured = "-" if math.isnan(row.measured_s) else duration(row.measured_s)
            lines.append(f"  {row.model:24} {row.reached:>3} of {row.runs:<2} {steps:>28} {row.step_s:>8.3f} "
                         f"{projected:>30} {measured:>14}")
        first = group[group["first"]]
        if len(first):
            lines.append(f"  first to {target:g}% here: {first.model.iloc[0]}")
        best = group[group["best_in_budget"]]
        if len(best):
            row = best.iloc[0]
            lines.append(f"  best within {duration(row.budget_s)} of training here: {row.model} "
                         f"({row.best_val_top1_in_budget:.2f}% mean best validation top-1 by then)")
        lines.append("")
    return "\n".join(lines + [f"note: {note}" for note in notes])
