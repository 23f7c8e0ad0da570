"""`archbench-report export results_dir=results/runs out=runs.parquet|runs.csv [include_synthetic=true]`

Writes `archbench.results.load(results_dir)` to one file for notebooks and other tools: one row per
usable run (failed, diverged, partial and duplicate records are left out, as in the report; synthetic
ones too unless include_synthetic=true), flat columns, units in the names. `.parquet` keeps the column
types (it needs pyarrow); `.csv` is plain text. Also `python -m archbench.report export ...`.

Columns (the record module owns the map, `archbench.record.record_columns` and the metric declarations
`archbench.record.METRICS`, each of which is a column; `results.load` adds `variant_label`). Units:
`*_ms` milliseconds, `*_s` seconds, `*_bytes` bytes, `*_img_s` images per second; accuracies (`*_top1`,
`*_top5`) in percent [0, 100]; MACs count multiply-adds (fvcore), FLOPs are two per MAC.

  identity      study, data, model, variant (folder name of the settings), seed, fingerprint (hash of
                the settings that make a run; a tuned run sharing a trial's fingerprint and seed is left out),
                variant_settings (JSON of the settings that make the variant), variant_label (the
                settings in which this model's variants differ, e.g. `lr=0.05`; empty with one variant)
  run           family, status (complete), task (train | profile), synthetic (bool),
                near_chance (bool: accuracy within noise of chance), numerics (fingerprint of what can
                change what the run learned, the machine aside: runs sharing it may pool their accuracy)
  machine       hardware (label runs are grouped by: every machine of a comparison pooled at one numerics
                identity), trained_on (the run's own machine), speed_machine (whose speed figures a pooled
                comparison shows), machine_check (its machine-effect test, in words), device, device_name,
                cpu_model, threads, torch, python, cuda, archbench_version, git_commit, git_dirty, hostname,
                start_time, end_time
  data, recipe  data_label, recipe (name), recipe_config (JSON of the whole recipe), budget (JSON),
                batch_size, lr, weight_decay, label_smoothing, amp, train_size, val_size, test_size,
                num_classes, image_size, order_seed (data order and augmentation draws; follows the
                seed unless a study varies it), channels_last (layout that trained), batch_size_halved
                (bool: the batch did not fit), stem and final_feature_map (small-input stem and the last
                map's size: they differ between families and are named as confounds)
  tuning        tuning_study, trial, trials (a trial k of n of an equal-effort tuning study),
                tuned_from, selected_trial (the tuning study and trial whose settings a final run
                used); empty for ordinary runs
  complexity    params, trainable_params, macs, flops_forward, flops_train (forward + backward, per
                image), activations
  speed         latency_hardware (the machine latency and throughput were timed on: the run's own, or
                the one task=measure re-timed them on), latency_device, latency_precision (what they were
                timed at, e.g. 'fp32 NCHW'), latency_b1_ms, latency_b1_p10_ms,
                latency_b1_p90_ms (batch-1 median and spread), throughput_batch_size, throughput_img_s,
                train_img_s, wall_s (training only), job_wall_s (the whole job), epochs, steps, mfu
                (achieved / peak FLOP/s), peak_mem_bytes, mfu_raw and mfu_note (the MFU as computed,
                and why it is not shown when above 100% or against a peak taken under load),
                latency_under_load (why a speed figure counts as taken under load; empty when quiet),
                shared_device (set when a parallel sweep's jobs shared the run's GPU: its training
                figures are those of that sharing),
                latency_quiet (JSON of the load check),
                train_j_per_image and inference_j_per_image (NVML energy in joules; empty off NVIDIA GPUs)
  time-to-target  ttt_target (top-1 %), ttt_s, ttt_epoch (empty when not reached)
  accuracy      val_top1, val_top5, val_loss (at the epoch chosen on validation), test_top1, test_top5
                (at that epoch), test_top1_last (at the last epoch), best_epoch
  source        path (the record.json the row came from), outcomes_file (its per-image test outcomes,
                test_outcomes.npz, when saved)

In the CSV, empty cells are missing values, and text that looks like a number (cuda `13.0`, torch,
python) is read back as a number unless named: `pd.read_csv(path, dtype={"cuda": str})`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from archbench.base.files import atomic_write
from archbench.base.keyvalue import parse_key_values

from .loading import load_with_exclusions

USAGE = __doc__.splitlines()[0].strip("`")
DEFAULTS = {"results_dir": "results/runs", "out": None, "include_synthetic": False}
FORMATS = (".parquet", ".csv")
EXIT_BAD_INPUT = 2  # as the report and the training CLI


class ExportError(ValueError):
    """Bad input to the export; the message names the fix."""


def parse_arguments(arguments: list[str]) -> dict:
    options = parse_key_values(arguments, DEFAULTS, usage=USAGE, booleans={"include_synthetic"}, error=ExportError)
    if options["out"] is None:
        raise ExportError(f"out= is required, e.g. out=runs.parquet or out=runs.csv; usage: {USAGE}")
    if Path(options["out"]).suffix.lower() not in FORMATS:
        raise ExportError(f"out={options['out']!r} must end in .parquet or .csv (the format follows the name)")
    return options


def export(results_dir, out, include_synthetic: bool = False) -> pd.DataFrame:
    """Write the runs table of `results_dir` to `out` (.parquet or .csv); return the table written."""
    out = Path(out)
    if out.suffix.lower() == ".parquet":
        _require_pyarrow()
    runs, excluded = load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    if runs.empty:
        reasons = ", ".join(sorted(set(excluded["reason"].astype(str).str.split(":").str[0]))[:5])
        hint = f"; {len(excluded)} record(s) left out ({reasons})" if len(excluded) else ""
        raise ExportError(f"no usable run records under results_dir={str(results_dir)!r}{hint}: point "
                          "results_dir at the folder holding runs/<study>/..., or pass include_synthetic=true "
                          "for runs on synthetic data")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        atomic_write(out, lambda handle: runs.to_parquet(handle, index=False))
    else:
        atomic_write(out, lambda handle: handle.write(runs.to_csv(index=False).encode()))
    return runs


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise ExportError("out=*.parquet needs pyarrow, which is not installed: pip install pyarrow "
                          "(or write out=runs.csv)") from error


def main(argv: list[str]) -> int:
    try:
        options = parse_arguments(list(argv))
        runs = export(**options)
    except (ExportError, FileNotFoundError, NotADirectoryError) as error:
        print(f"archbench.report: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(runs)} runs x {len(runs.columns)} columns written to {options['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
