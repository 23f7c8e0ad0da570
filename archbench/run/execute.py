"""One run, top to bottom: validate -> skip or resume -> build -> train -> measure -> write record.

Bad input fails in `validate` or while building, before the run's folder exists, so it never leaves a
`failed` record or a half-made folder behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
import traceback
from pathlib import Path

import torch

from archbench.base.files import WriteError, atomic_write_bytes, check_free_space, check_writable, exclusive_lock
from archbench.loggers import make_logger, unavailable
from archbench.measure import measure_latency, measure_latency_isolated
from archbench.outcomes import OUTCOMES_FILENAME, write_outcomes
from archbench.quiet import QuietSettings, measure_quietly, shared_cores_note
from archbench.record import (atomic_write_json, environment, near_chance, new_record, now_iso, record_path,
                              this_machine)
from archbench.run.assemble import Built, build
from archbench.run import distributed
from archbench.run.distributed import from_rank_0, init_distributed
from archbench.run.existing import finished_record, note_other_variants, other_machines_note, run_lock
from archbench.run.spec import InvalidRunError, RunSpec, resolve_device, summary, validate
from archbench.run.tasks import WEIGHTS_FILENAME, evaluate_run, evaluate_weights, measure_run
from archbench.run.training import CHECKPOINT_FILE, train

log = logging.getLogger("archbench")

# Held while a job measures latency and throughput, so parallel jobs of one results folder take turns.
MEASURE_LOCK = ".measure.lock"


def run(spec: RunSpec) -> dict:
    """Run (or skip, or resume) one job and return a one-line summary for the sweep table."""
    tick = time.perf_counter()
    try:
        validate(spec)
    except (ValueError, TypeError) as err:
        raise InvalidRunError(str(err)) from err
    rank = distributed.rank()
    if spec.task == "evaluate":
        _check_writable(spec)
        return evaluate_run(spec, tick)
    if spec.task == "measure":
        return measure_run(spec, tick)
    if not spec.force and (done := finished_record(spec)) is not None:
        log.info("skip %s: record is %s (force=true reruns it)", spec.record_dir, done["status"])
        return summary(spec, "skipped", done, time.perf_counter() - tick)
    if rank == 0:
        _check_writable(spec)  # before anything is built: a read-only results_dir costs nothing
    note_other_variants(spec)
    if rank == 0 and (note := other_machines_note(spec, this_machine(resolve_device(spec.device)))):
        log.warning("%s", note)
    if rank == 0 and str(resolve_device(spec.device)) == "cpu":
        if note := shared_cores_note(torch.get_num_threads()):
            log.warning("%s", note)

    log.info("building %s on %s: %s", spec.model.name, spec.dataset_name,
             "model and complexity count, then latency" if spec.task == "profile"
             else "data, model, complexity count (and latency after training)")
    try:
        built = build(spec)  # data and model: bad input fails here, before any folder exists
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as err:
        raise InvalidRunError(str(err)) from err
    if rank == 0 and spec.task == "train":
        try:
            check_free_space(spec.results_dir, *expected_write_bytes(spec, built))
        except WriteError as err:
            raise InvalidRunError(str(err)) from err
    world = distributed.world_size()
    if world > 1:
        built.device = init_distributed(built.device)  # before any decision, so every rank takes rank 0's
    lock = run_lock(spec.record_dir, spec.on_locked) if rank == 0 else contextlib.nullcontext(True)
    with lock as held:
        decision = "run" if held else "locked"
        if held and rank == 0 and not spec.force and finished_record(spec) is not None:
            decision = "skipped"  # finished while we waited for the lock
        if world > 1:
            decision = from_rank_0(decision)  # a rank alone would train and hang in the first collective
        if decision != "run":
            log.info("skip %s: %s", spec.record_dir, "another process holds its lock" if decision == "locked"
                     else "record is complete")
            return summary(spec, decision, finished_record(spec), time.perf_counter() - tick)
        if spec.force and rank == 0:
            (spec.record_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        with _log_to_file(spec.record_dir / "run.log") if rank == 0 else contextlib.nullcontext():
            return execute(spec, built, tick)


def _check_writable(spec: RunSpec) -> None:
    try:
        check_writable(spec.results_dir)
    except WriteError as err:
        raise InvalidRunError(str(err)) from err


def expected_write_bytes(spec: RunSpec, built: "Built") -> tuple[int, str]:
    """(bytes, how they add up) a training run writes at its peak: the checkpoint twice (the new one is written
    beside the old before replacing it), the selected weights, the record and log."""
    params = int(built.complexity.get("params") or sum(p.numel() for p in built.model.parameters()))
    # fp32 weights, plus the optimizer's per-weight state (up to two for Adam) and an EMA copy when kept
    copies = 1 + 2 + (1 if spec.recipe.ema_decay else 0)
    checkpoint = 4 * params * copies
    slack = 8 << 20  # record, run log, loggers' files, file-system blocks
    need = 2 * checkpoint + 4 * params + slack
    return need, (f"a checkpoint of about {checkpoint / 2**20:.1f} MiB, twice while it is replaced, "
                  f"{4 * params / 2**20:.1f} MiB of weights, the record and log")


def execute(spec: RunSpec, built: Built, tick: float) -> dict:
    """Train (or profile), measure and write the record; any crash still leaves a `failed` record."""
    rank = distributed.rank()
    identity = {"fingerprint": spec.fingerprint, "variant": spec.variant, "settings": spec.identity}
    record = new_record(task=spec.task, study=spec.study, model=spec.model.name, family=built.family,
                        data=spec.dataset_name, seed=spec.seed, config=spec.config, identity=identity,
                        recipe=spec.recipe.describe() if spec.recipe else None, env=environment(built.device),
                        tuning=spec.tuning,
                        synthetic=bool(getattr(built.dataset, "synthetic", False)) or spec.dataset_name == "synthetic")
    record.update(dataset=built.data_info, complexity=built.complexity)
    path = record_path(spec.record_dir)
    tracker = _tracker(spec, record) if rank == 0 else None
    try:
        if spec.task == "train":
            result = train(spec, built, record, tracker)
            record.update(status=result.status, history=result.history, metrics=result.metrics, train=result.train)
            val = record["metrics"] or {}
            top1 = val.get("val_top1") if val.get("val_top1") is not None else val.get("test_top1")
            count = built.data_info.get("val_size") if val.get("val_top1") is not None else built.data_info.get("test_size")
            if result.status == "complete" and near_chance(top1, built.data_info.get("num_classes"), count):
                record["flags"].append("near_chance")
                log.warning("%s finished within noise of chance (top-1 %.2f%% with %s classes): flagged near_chance",
                            spec.model.name, top1, built.data_info.get("num_classes"))
        else:
            record["status"] = "complete"
        if record["status"] == "complete" and rank == 0 and spec.defer_speed:
            log.info("latency and throughput of %s: measured after the sweep, when no job trains beside it",
                     spec.model.name)
            record["latency"] = {"deferred": "parallel sweep: measured after training, one model at a time "
                                             "(task=measure)"}
        elif record["status"] == "complete" and rank == 0:  # one measurement, on rank 0's own device
            log.info("measuring latency and throughput of %s", spec.model.name)
            # Jobs sharing a machine (several on one GPU) measure one at a time, never two at once.
            with exclusive_lock(Path(spec.results_dir) / MEASURE_LOCK, wait=True):
                record["latency"] = _quiet_latency(spec, built, measure_latency)
        if record["status"] == "complete" and spec.task == "train" and rank == 0:
            _save_weights(spec.record_dir / WEIGHTS_FILENAME, built.model)
            if result.test_outcomes is not None:  # which test images it got right, so comparisons can pair them
                record["test_outcomes"] = write_outcomes(spec.record_dir / OUTCOMES_FILENAME, *result.test_outcomes)
            if spec.evaluate is not None and spec.evaluate.after_train:
                record.update(evaluate_weights(spec, built.model, built.dataset, built.device, record.get("train")))
    except SystemExit:
        raise  # interrupted: the checkpoint is saved, the record is not final
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
        record["env"]["end_time"] = now_iso()
        if rank == 0:
            try:
                atomic_write_json(path, record)
                log.error("run failed; wrote %s", path)
            except OSError as write_err:  # a full disk fails this write too: the first error is the one to see
                log.error("run failed, and its failed record could not be written either (%s)", write_err)
        raise
    finally:
        if tracker is not None:
            tracker.log_final(record.get("metrics") or record.get("latency") or {}, record.get("complexity") or {})
            tracker.close()
    record["env"]["end_time"] = now_iso()
    record["env"]["job_wall_s"] = time.perf_counter() - tick  # the whole job: build, train, measure
    if rank == 0:
        atomic_write_json(path, record)
        (spec.record_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # finished: the record is the result
        log.info("wrote %s (status %s)\n%s", path, record["status"], result_table(record))
    return summary(spec, record["status"], record, time.perf_counter() - tick)


def result_table(record: dict) -> str:
    """The few figures a person wants at the end of a run, as a small aligned table."""
    complexity, latency = record.get("complexity") or {}, record.get("latency") or {}
    metrics, train = record.get("metrics") or {}, record.get("train") or {}
    b1, tp = latency.get("batch_1") or {}, latency.get("throughput") or {}
    rows = [("model", record.get("model")), ("status", record.get("status")),
            ("params", format_value(complexity.get("params"), "{:,.0f}")),
            ("MACs (multiply-adds)", format_value(complexity.get("macs"), "{:,.0f}")),
            ("FLOPs forward", format_value(complexity.get("flops_forward"), "{:,.0f}")),
            ("batch-1 latency median / p90", f"{format_value(b1.get('median_ms'), '{:.2f}')} / {format_value(b1.get('p90_ms'), '{:.2f}')} ms"),
            ("throughput", f"{format_value(tp.get('img_per_s'), '{:,.0f}')} img/s at batch {tp.get('batch_size', '-')}")]
    if record.get("task") == "train":
        rows += [("test top-1 (selected on val)", format_value(metrics.get("test_top1"), "{:.2f}%")),
                 ("val top-1", format_value(metrics.get("val_top1"), "{:.2f}%")),
                 ("training time", format_value(train.get("wall_s"), "{:.1f} s")),
                 ("training img/s", format_value(train.get("img_per_s"), "{:,.0f}"))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def format_value(value, pattern: str) -> str:
    """A figure in `pattern`, or - when it is missing."""
    return "-" if value is None else pattern.format(value)


def _tracker(spec: RunSpec, record: dict):
    """The experiment loggers the user asked for (none by default); a failing one warns once, never fails the run."""
    if spec.logger is None or not spec.logger.names:
        return None
    missing = unavailable(spec.logger.names)
    if missing:  # an optional package: the record says which logger is left out and why
        record["logger"] = {"skipped": missing}
        for why in missing.values():
            log.warning("%s; the run goes on without that logger", why)
    tracker = make_logger([n for n in spec.logger.names if n not in missing], spec.record_dir,
                          spec.logger.mlflow_uri)
    tracker.log_hparams({"study": spec.study, "model": spec.model.name, "data": spec.dataset_name,
                         "seed": spec.seed, "variant": spec.variant, **record["identity"]["settings"]})
    return tracker


def _latency(spec: RunSpec, built: Built, measure_latency) -> dict:
    options = dict(spec.measure.options)
    if spec.measure.isolate:
        create = {"num_classes": built.data_info["num_classes"], "in_chans": built.input_shape[1],
                  "input_size": built.input_shape[2], "stem": spec.model.stem, **spec.model.kwargs}
        return measure_latency_isolated(spec.model.builder_name, create, built.input_shape, device=built.device,
                                        **options)
    return measure_latency(built.model, built.input_shape, device=built.device, **options)


def _quiet_latency(spec: RunSpec, built: Built, measure_latency) -> dict:
    """A single run measures at once (no wait, as before) but says how busy the machine was.

    Its own training just ended and still lifts the 1-minute load by up to its threads; a load above
    the limit plus that means something else ran beside it, and the figure is marked under_load.
    """
    quiet = dataclasses.replace(spec.measure.quiet or QuietSettings(), timeout_s=0)
    threads = torch.get_num_threads() if built.device == "cpu" else 1
    own = threads if spec.task == "train" else 0
    quiet = dataclasses.replace(quiet, max_load_per_thread=quiet.max_load_per_thread + own / threads)
    return measure_quietly(lambda: _latency(spec, built, measure_latency), quiet, threads)


def _save_weights(path: Path, model) -> None:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def _log_to_file(path: Path):
    """The run's log beside its record (Hydra's own log file is off, so bad input leaves no folder)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
