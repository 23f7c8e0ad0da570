"""Running one job: `run(spec)` trains (or profiles), measures and writes its record; `preflight(spec)` plans it.

Takes a `RunSpec` of per-stage settings objects (archbench.settings; the entry point builds them from
Hydra's config groups), so a run can be started from Python or a test without Hydra. The stages, in the
order a run meets them:

- spec: what a run is (`RunSpec`), its run-level checks and the device;
- existing: the record already on disk (the run's lock, a finished record to skip to);
- assemble: data, model and complexity count, built before the run's folder exists;
- training: the training stage (loaders, the precision that trains, the loop);
- execute: `run`, top to bottom, and the speed measurement after training;
- tasks: task=evaluate and task=measure, which work on a finished run's record;
- preflight: the dry run (`dry_run=true`). The function `preflight` shadows its module's name here:
  `importlib.import_module("archbench.run.preflight")` is the module.
"""
from archbench.run.assemble import Built, batch_too_large, build, create_model, load_data
from archbench.run.execute import MEASURE_LOCK, result_table, run
from archbench.run.existing import finished_record, note_other_variants, run_lock
from archbench.run.preflight import format_plan, preflight
from archbench.run.spec import LOCK_POLICIES, TASKS, InvalidRunError, RunSpec, resolve_device, summary, validate
from archbench.run.tasks import WEIGHTS_FILENAME, evaluate_run, measure_run

__all__ = ["Built", "InvalidRunError", "LOCK_POLICIES", "MEASURE_LOCK", "RunSpec", "TASKS", "WEIGHTS_FILENAME",
           "batch_too_large", "build", "create_model", "evaluate_run", "finished_record", "format_plan",
           "load_data", "measure_run", "note_other_variants", "preflight", "resolve_device", "result_table", "run",
           "run_lock", "summary", "validate"]
