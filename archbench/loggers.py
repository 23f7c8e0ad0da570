"""Experiment loggers: mirror a run into the trackers researchers already watch (CSV, TensorBoard, MLflow).

The record (`record.json`) stays the source of truth; a logger is a copy for people who watch runs in
their own tools. So a logger may never hurt the run: a library that is missing is refused up front
(`make_logger` raises, naming the extra to install), but once training has started any failure of a
logger (disk full, tracking server gone) is warned about once and that logger is switched off; it never
raises into the training loop and is never retried.

Chosen with the Hydra group `logger` (conf/logger/): `logger=csv`, or several with
`logger=[tensorboard,csv]`. Each option adds its own key under `logger` (`logger: {csv: {}, mlflow:
{uri: null}}`) because Hydra merges dicts but replaces lists, so a `names: [...]` list could hold only
the last option chosen. `LoggerSettings.from_config` turns that node into `names` and `mlflow_uri`.

Everything goes under `<run_dir>/logs/`:
  csv          metrics.csv (one row per epoch), final.csv (one row: final metrics and complexity),
               hparams.json (the run's identity settings)
  tensorboard  tensorboard/ (event files: per-epoch scalars, `final/*`, `complexity/*`, hparams)
  mlflow       mlruns/ (an MLflow file store) unless `mlflow_uri` names another store or server;
               experiment = the study, run name = `<model>/<data>/seed<k>`. MLflow 3 reads a file store
               only with MLFLOW_ALLOW_FILE_STORE=true set (this module sets it for its own writes):
               `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <run_dir>/logs/mlruns`
               (the UI needs the full `mlflow` package; the extra installs the client, mlflow-skinny).
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from archbench.base.files import atomic_write, atomic_write_json
from archbench.settings import SettingsError, check_keys, flatten

LOGGER_NAMES = ("none", "csv", "tensorboard", "mlflow")
# Which importable module each logger needs, and the pip extra that installs it.
REQUIRED_MODULES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
# Options each logger accepts under its key in the `logger` config node.
LOGGER_OPTIONS = {"none": (), "csv": (), "tensorboard": (), "mlflow": ("uri",)}
# History keys that index an entry rather than measure anything.
STEP_KEYS = ("epoch", "step")


class LoggerUnavailable(SettingsError):
    """A logger was asked for whose library is not installed; the message names the extra to install."""


@dataclass(frozen=True)
class LoggerSettings:
    names: tuple[str, ...] = ()
    mlflow_uri: str | None = None

    @classmethod
    def from_config(cls, config: dict | None) -> "LoggerSettings":
        """From the `logger` config node: `{}` (none), `{csv: {}}`, `{tensorboard: {}, mlflow: {uri: ...}}`."""
        config = dict(config or {})
        check_keys("logger", config, list(LOGGER_NAMES))
        names, mlflow_uri = [], None
        for name, options in config.items():
            options = {} if options is None else options
            if not isinstance(options, dict):
                raise SettingsError(f"logger.{name}={options!r} is not a mapping of options: choose the "
                                    f"logger with logger={name} (or logger=[{name},csv] for several)")
            check_keys(f"logger.{name}", options, list(LOGGER_OPTIONS[name]))
            if name == "mlflow":
                mlflow_uri = options.get("uri") or None
            if name != "none":
                names.append(name)
        return cls(names=tuple(names), mlflow_uri=mlflow_uri)


def require_libraries(names) -> None:
    """Raise `LoggerUnavailable` for an unknown logger or one whose library is missing; imports nothing."""
    for name in names:
        if name not in LOGGER_NAMES:
            check_keys("logger", {name: None}, list(LOGGER_NAMES))
        module, extra = REQUIRED_MODULES.get(name, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise LoggerUnavailable(f"logger={name} needs the {module} package, which is not installed: "
                                    f"pip install 'archbench[{extra}]' (or choose logger=csv)")


def unavailable(names) -> dict[str, str]:
    """{name: why} for each chosen logger whose library is missing: the run goes on without those."""
    missing = {}
    for name in names:
        try:
            require_libraries([name])
        except LoggerUnavailable as err:
            if name in LOGGER_NAMES:
                missing[name] = str(err)
            else:
                raise  # a misspelt name is bad input, not a missing package
    return missing


class RunLogger:
    """Forwards each call to every chosen backend; a backend that raises is warned about once and dropped.

    Call order: `log_hparams` once, `log_epoch` per history entry, `log_final` once, then `close`.
    With no backends every call returns at once.
    """

    def __init__(self, backends=()):
        self._backends = list(backends)

    @property
    def names(self) -> list[str]:
        """The backends still logging (one that failed is no longer listed)."""
        return [backend.name for backend in self._backends]

    def log_hparams(self, settings: dict) -> None:
        self._call("log_hparams", settings)

    def log_epoch(self, entry: dict) -> None:
        self._call("log_epoch", entry)

    def log_final(self, metrics: dict, complexity: dict) -> None:
        self._call("log_final", metrics, complexity)

    def close(self) -> None:
        self._call("close")
        self._backends = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _call(self, method: str, *args) -> None:
        for backend in list(self._backends):
            try:
                getattr(backend, method)(*args)
            except Exception as error:  # noqa: BLE001 - the run must outlive any tracker failure
                self._backends.remove(backend)
                warnings.warn(f"archbench: the {backend.name} logger failed in {method} ({error!r}); it is "
                              f"switched off for the rest of this run, which continues (the record is "
                              f"written as usual)", RuntimeWarning, stacklevel=3)
                # Release what it holds (file handles, an open MLflow run); a second failure stays silent.
                if method != "close":
                    try:
                        backend.close()
                    except Exception:  # noqa: BLE001
                        pass


def make_logger(names, run_dir, mlflow_uri: str | None = None) -> RunLogger:
    """A `RunLogger` writing under `<run_dir>/logs/` to each of `names` (none, csv, tensorboard, mlflow).

    Raises `LoggerUnavailable` (a `SettingsError`) for an unknown name or a missing library, before
    anything is written; an empty list or `["none"]` gives a logger that does nothing and imports nothing.
    """
    if isinstance(names, str):
        names = [names]
    names = [name for name in dict.fromkeys(names) if name != "none"]
    if not names:
        return RunLogger()
    require_libraries(names)
    logs = Path(run_dir) / "logs"
    makers = {"csv": lambda: CsvBackend(logs),
              "tensorboard": lambda: TensorBoardBackend(logs / "tensorboard"),
              "mlflow": lambda: MlflowBackend(mlflow_uri or (logs / "mlruns").resolve().as_uri())}
    backends = []
    for name in names:
        try:
            backends.append(makers[name]())
        except Exception as error:  # noqa: BLE001 - an unwritable folder or a bad URI must not stop the run
            warnings.warn(f"archbench: the {name} logger could not start ({error!r}); the run goes on "
                          f"without it", RuntimeWarning, stacklevel=2)
    return RunLogger(backends)


def scalars(values: dict, skip=()) -> dict:
    """The finite numbers in `values` (None, text, lists and NaN are not plottable scalars)."""
    return {key: float(value) for key, value in values.items()
            if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def _step(entry: dict) -> int:
    return int(entry.get("epoch") or 0)


class CsvBackend:
    """Plain files any tool reads: `metrics.csv` grows by one row per epoch, as timm's summary.csv does."""

    name = "csv"

    def __init__(self, folder: Path):
        self.folder = folder
        self.metrics_path = folder / "metrics.csv"
        self.rows = _read_csv(self.metrics_path)

    def log_hparams(self, settings: dict) -> None:
        atomic_write_json(self.folder / "hparams.json", settings)

    def log_epoch(self, entry: dict) -> None:
        row = {key: "" if value is None else value for key, value in entry.items()}
        # Epochs arrive in order, so rows at or after this epoch are from an earlier attempt: a resumed
        # run keeps the epochs before its checkpoint, a rerun from epoch 0 starts the file afresh.
        self.rows = [old for old in self.rows if _epoch(old) < _epoch(row)] + [row]
        _write_csv(self.metrics_path, self.rows)

    def log_final(self, metrics: dict, complexity: dict) -> None:
        row = {**{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))},
               **{k: v for k, v in complexity.items() if not isinstance(v, (dict, list))}}
        _write_csv(self.folder / "final.csv", [row])

    def close(self) -> None:
        pass


def _epoch(row: dict) -> float:
    try:
        return float(row.get("epoch"))
    except (TypeError, ValueError):
        return -math.inf  # a row without an epoch cannot be placed, so it is never replaced


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode()))


class TensorBoardBackend:
    """Event files for `tensorboard --logdir <run_dir>/logs/tensorboard` (or a study's folder for all runs)."""

    name = "tensorboard"

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))
        self.hparams: dict = {}

    def log_hparams(self, settings: dict) -> None:
        # The HParams dashboard needs the final metrics too, so its summary is written by log_final;
        # the text tab shows the settings from the start.
        self.hparams = {key: value if isinstance(value, (int, float, str, bool)) else str(value)
                        for key, value in flatten(settings).items()}
        self.writer.add_text("hparams", "```\n" + json.dumps(settings, indent=2, default=str) + "\n```")

    def log_epoch(self, entry: dict) -> None:
        for key, value in scalars(entry, skip=STEP_KEYS).items():
            self.writer.add_scalar(key, value, global_step=_step(entry))

    def log_final(self, metrics: dict, complexity: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {f"final/{key}": value for key, value in scalars(metrics).items()}
        final.update({f"complexity/{key}": value for key, value in scalars(complexity).items()})
        for key, value in final.items():
            self.writer.add_scalar(key, value, global_step=0)
        if self.hparams:
            # Same event file as the scalars above, so the HParams tab pairs these settings with them.
            for summary in hparams(self.hparams, final):
                self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


# MLflow refuses a log_batch with more than 100 params (a flattened recipe can have more).
MLFLOW_PARAMS_PER_BATCH = 100


class MlflowBackend:
    """One MLflow run per archbench run: params = identity settings, metrics = history, finals, complexity."""

    name = "mlflow"

    def __init__(self, uri: str):
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store only on request (the database store needs SQLAlchemy, which
            # mlflow-skinny leaves out); a file store per run folder needs no server and no database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        elif uri.startswith(("http:", "https:")):
            # A tracking server that is gone must cost one failed request, not minutes of back-off.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = None

    def _run(self, settings: dict | None = None) -> str:
        if self.run_id is None:
            settings = settings or {}
            study = str(settings.get("study") or "archbench")
            experiment = self.client.get_experiment_by_name(study)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(study)
            name = "/".join(str(settings[key]) for key in ("model", "data") if settings.get(key) is not None)
            if settings.get("seed") is not None:
                name += f"/seed{settings['seed']}"
            self.run_id = self.client.create_run(experiment_id, run_name=name or None).info.run_id
        return self.run_id

    def log_hparams(self, settings: dict) -> None:
        from mlflow.entities import Param

        params = [Param(key, json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value))
                  for key, value in flatten(settings).items()]
        run_id = self._run(settings)
        for start in range(0, len(params), MLFLOW_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start:start + MLFLOW_PARAMS_PER_BATCH])

    def log_epoch(self, entry: dict) -> None:
        self._log_metrics(scalars(entry, skip=STEP_KEYS), step=_step(entry))

    def log_final(self, metrics: dict, complexity: dict) -> None:
        values = {f"final/{key}": value for key, value in scalars(metrics).items()}
        values.update({f"complexity/{key}": value for key, value in scalars(complexity).items()})
        self._log_metrics(values, step=0)

    def _log_metrics(self, values: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self.client.log_batch(self._run(), metrics=metrics)

    def close(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id)
