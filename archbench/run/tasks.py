"""The tasks that work on a finished training run's record: evaluate (calibration, robustness) and measure (speed)."""
from __future__ import annotations

import dataclasses
import logging
import time

import torch

from archbench.evaluate import evaluate
from archbench.record import RECORD_FILE, atomic_write_json, read_record, record_path
from archbench.run.assemble import create_model, load_data
from archbench.run.existing import run_lock
from archbench.run.remeasure import remeasure_record
from archbench.run.spec import InvalidRunError, RunSpec, resolve_device, summary

log = logging.getLogger("archbench")
# The selected (best-validation) weights, beside the record: task=evaluate re-evaluates from them.
WEIGHTS_FILENAME = "weights.pt"


def evaluate_weights(spec: RunSpec, model, dataset, device: str, train: dict | None = None) -> dict:
    """Calibration and corruption robustness of the selected weights (archbench.evaluate), in the precision
    and layout the run trained in (`train`: the record's train section)."""
    train = train or {}
    amp = train.get("amp") if train.get("amp") in ("bf16", "fp16") else "off"
    log.info("evaluating calibration and corruption robustness of %s%s", spec.model.name,
             " (evaluate.after_train=false skips this)" if spec.task == "train" else "")
    tick = time.perf_counter()
    sections = evaluate(model, dataset, device, spec.evaluate, amp=amp,
                        channels_last=bool(train.get("channels_last")))
    for section in sections.values():
        if isinstance(section, dict):
            section.setdefault("evaluate_s", time.perf_counter() - tick)
    return sections


def evaluate_run(spec: RunSpec, tick: float) -> dict:
    """task=evaluate: add calibration and robustness to a finished run from its saved weights, no retraining.

    Everything already in the record stays byte-identical; only the evaluation sections are (re)written.
    """
    path = record_path(spec.record_dir)
    record = read_record(path)
    if record is None or record.get("status") != "complete":
        raise InvalidRunError(f"task=evaluate needs a complete training record at {path} (found "
                              f"{'none' if record is None else record.get('status')}): run the same command "
                              "with task=train first")
    weights = spec.record_dir / WEIGHTS_FILENAME
    if not weights.exists():
        raise InvalidRunError(f"task=evaluate: {path.parent} has no saved weights ({WEIGHTS_FILENAME}); runs made "
                              "before archbench saved weights must be retrained (force=true)")
    dataset = load_data(spec.data)
    model, _, _ = create_model(spec, record["dataset"])
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, garbled or another model's: torch raises many types
        raise InvalidRunError(
            f"task=evaluate: the saved weights {weights} cannot be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); the record {path} was left unchanged. "
            f"Rebuild the weights by training again: the same command with task=train force=true (it replaces "
            f"the record with a new run of the same settings), then task=evaluate") from err
    device = resolve_device(spec.device)
    model.to(device).eval()
    record.update(evaluate_weights(spec, model, dataset, device, record.get("train")))
    with run_lock(spec.record_dir, "wait"):
        atomic_write_json(path, record)
    log.info("added calibration and robustness to %s", path)
    return summary(spec, "evaluated", record, time.perf_counter() - tick)


def measure_run(spec: RunSpec, tick: float) -> dict:
    """task=measure: the speed figures of this job's finished record (training or profile), taken again in quiet."""
    candidates = [dataclasses.replace(spec, task="train"), dataclasses.replace(spec, task="profile", recipe=None)]
    found = next((c for c in candidates if record_path(c.record_dir).exists()), None)
    model_dir = candidates[0].record_dir.parent.parent
    others = sorted(model_dir.glob(f"*/seed{spec.seed}/{RECORD_FILE}"))
    if found is None and len(others) == 1:
        # Made by an older archbench whose settings fingerprint differently: speed depends only on the
        # architecture the record names, so its one record of this model and seed is the one to measure.
        log.info("task=measure: no record of this exact identity; measuring the study's one record of %s seed %d "
                 "(%s)", spec.model.name, spec.seed, others[0].parent.parent.name)
        status, record = remeasure_record(others[0], spec.measure, device=spec.device, force=spec.force)
        return {**summary(candidates[0], status, record, time.perf_counter() - tick), "record": str(others[0])}
    if found is None:
        raise InvalidRunError(f"task=measure found no record of this job at {candidates[0].record_dir} (training) "
                              f"or {candidates[1].record_dir} (profile): pass the study's own settings and its "
                              "results_dir (e.g. results_dir=results/reference), or run the study first")
    try:
        status, record = remeasure_record(record_path(found.record_dir), spec.measure, device=spec.device,
                                          force=spec.force)
    except ValueError as err:
        raise InvalidRunError(str(err)) from err
    return summary(found, status, record, time.perf_counter() - tick)
