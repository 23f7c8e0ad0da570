"""Experiment loggers (archbench.loggers): each writes what a reader of its tool sees, and a failing
logger warns once and never stops the caller."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from archbench.loggers import (LoggerSettings, LoggerUnavailable, RunLogger, TensorBoardBackend, make_logger)
from archbench.settings import SettingsError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

HPARAMS = {"study": "logtest", "model": "resnet20", "data": "fashion_mnist", "seed": 1,
           "recipe": {"name": "quick", "optimizer": {"lr": 0.1}, "budget": {"epochs": 3}}}
# Shaped like archbench.train history entries: an epoch without validation has None values.
HISTORY = [
    {"epoch": 0, "train_loss": 2.0, "train_top1": 30.0, "val_loss": None, "val_top1": None, "lr": 0.1, "step": 10},
    {"epoch": 1, "train_loss": 1.5, "train_top1": 50.0, "val_loss": 1.2, "val_top1": 55.5, "lr": 0.05, "step": 20},
    {"epoch": 2, "train_loss": 1.1, "train_top1": 65.0, "val_loss": 1.0, "val_top1": 61.25, "lr": 0.01, "step": 30},
]
METRICS = {"val_top1": 61.25, "test_top1": 60.5, "best_epoch": 2, "selection": "val"}
COMPLEXITY = {"params": 272474, "macs": 41.0e6, "input_shape": [1, 3, 32, 32], "by_module": {"conv": 1}}


def log_run(logger: RunLogger, history=HISTORY) -> None:
    logger.log_hparams(HPARAMS)
    for entry in history:
        logger.log_epoch(entry)
    logger.log_final(METRICS, COMPLEXITY)
    logger.close()


@pytest.fixture
def clean_mlflow_env(monkeypatch):
    """The MLflow backend sets MLFLOW_* defaults in os.environ; undo them after each test."""
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
                 "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


# --- settings and Hydra composition ---------------------------------------------------------------

def test_settings_from_config_nodes():
    assert LoggerSettings.from_config({}) == LoggerSettings(names=(), mlflow_uri=None)
    assert LoggerSettings.from_config(None).names == ()
    both = LoggerSettings.from_config({"tensorboard": {}, "csv": {}})
    assert both.names == ("tensorboard", "csv")
    mlflow = LoggerSettings.from_config({"mlflow": {"uri": "http://tracking:5000"}})
    assert mlflow == LoggerSettings(names=("mlflow",), mlflow_uri="http://tracking:5000")


@pytest.mark.parametrize("config, named", [
    ({"tensorbord": {}}, "logger.tensorboard"),
    ({"mlflow": {"url": "http://x"}}, "logger.mlflow.uri"),
    ({"names": ["csv"]}, "logger.names"),
])
def test_settings_refuse_unknown_keys_naming_the_closest(config, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        LoggerSettings.from_config(config)


def test_settings_refuse_a_non_mapping_value():
    with pytest.raises(SettingsError, match="logger=csv"):
        LoggerSettings.from_config({"csv": "yes"})


@pytest.fixture
def conf_with_logger_default(tmp_path):
    """conf/logger/ under a config whose defaults say `- logger: none`, as conf/config.yaml does."""
    shutil.copytree(CONF_DIR / "logger", tmp_path / "logger")
    (tmp_path / "config.yaml").write_text("defaults:\n  - logger: none\n  - _self_\nseed: 0\n")
    return tmp_path


@pytest.mark.parametrize("overrides, names, uri", [
    ([], (), None),
    (["logger=none"], (), None),
    (["logger=csv"], ("csv",), None),
    (["logger=[tensorboard,csv]"], ("tensorboard", "csv"), None),
    (["logger=[mlflow,csv]", "logger.mlflow.uri=http://tracking:5000"], ("mlflow", "csv"), "http://tracking:5000"),
])
def test_hydra_group_composes_single_and_list_choices(conf_with_logger_default, overrides, names, uri):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(conf_with_logger_default), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    settings = LoggerSettings.from_config(OmegaConf.to_container(cfg.logger))
    assert settings.names == names
    assert settings.mlflow_uri == uri


def test_every_group_option_is_a_known_logger():
    options = sorted(path.stem for path in (CONF_DIR / "logger").glob("*.yaml"))
    assert options == ["csv", "mlflow", "none", "tensorboard"]


# --- make_logger ------------------------------------------------------------------------------------

@pytest.mark.parametrize("names", [[], ["none"], "none"])
def test_no_logger_writes_nothing(tmp_path, names):
    logger = make_logger(names, tmp_path)
    log_run(logger)
    assert logger.names == []
    assert list(tmp_path.iterdir()) == []


def test_no_logger_imports_no_tracker_library(tmp_path):
    code = ("import sys; from archbench.loggers import make_logger; make_logger(['none'], sys.argv[1]); "
            "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_library_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    with pytest.raises(LoggerUnavailable, match=r"pip install 'archbench\[mlflow\]'"):
        make_logger(["csv", "mlflow"], tmp_path)
    assert not (tmp_path / "logs").exists()


def test_unknown_logger_name_names_the_closest(tmp_path):
    with pytest.raises(SettingsError, match="logger.tensorboard"):
        make_logger(["tensorbaord"], tmp_path)


# --- what each tool's reader sees -------------------------------------------------------------------

def test_csv_rows_and_finals(tmp_path):
    log_run(make_logger(["csv"], tmp_path))
    logs = tmp_path / "logs"
    rows = pd.read_csv(logs / "metrics.csv")
    assert rows["epoch"].tolist() == [0, 1, 2]
    assert rows["train_loss"].tolist() == [entry["train_loss"] for entry in HISTORY]
    assert rows["val_top1"].isna().tolist() == [True, False, False]
    assert rows["val_top1"].iloc[2] == HISTORY[2]["val_top1"]
    final = pd.read_csv(logs / "final.csv")
    assert len(final) == 1
    assert final.loc[0, "test_top1"] == METRICS["test_top1"]
    assert final.loc[0, "macs"] == COMPLEXITY["macs"]
    assert "by_module" not in final.columns  # nested figures stay in the record
    assert json.loads((logs / "hparams.json").read_text()) == HPARAMS


def test_csv_resumed_run_continues_the_file(tmp_path):
    first = make_logger(["csv"], tmp_path)
    first.log_epoch(HISTORY[0])
    first.log_epoch(HISTORY[1])
    first.close()
    resumed = make_logger(["csv"], tmp_path)  # a new process resuming from the epoch-1 checkpoint
    resumed.log_epoch({**HISTORY[1], "train_loss": 1.4})
    resumed.log_epoch(HISTORY[2])
    resumed.close()
    rows = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert rows["epoch"].tolist() == [0, 1, 2]
    assert rows["train_loss"].tolist() == [2.0, 1.4, 1.1]
    rerun = make_logger(["csv"], tmp_path)  # force=true: the same run again from epoch 0
    rerun.log_epoch({**HISTORY[0], "train_loss": 2.5})
    rerun.close()
    rows = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert rows["epoch"].tolist() == [0]
    assert rows["train_loss"].tolist() == [2.5]


def test_tensorboard_scalars_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    log_run(make_logger(["tensorboard"], tmp_path))
    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "epoch" not in tags and "step" not in tags  # they are the x axis, not a curve
    val = events.Scalars("val_top1")
    assert [(e.step, e.value) for e in val] == [(1, 55.5), (2, 61.25)]
    assert [e.step for e in events.Scalars("train_loss")] == [0, 1, 2]
    assert events.Scalars("final/test_top1")[0].value == pytest.approx(METRICS["test_top1"])
    assert events.Scalars("complexity/params")[0].value == COMPLEXITY["params"]
    assert "final/selection" not in tags  # text is not a scalar
    # The HParams tab: the run's settings, flattened, beside its final metrics.
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    shown = HParamsPluginData.FromString(start).session_start_info.hparams
    assert shown["model"].string_value == "resnet20"
    assert shown["recipe.optimizer.lr"].number_value == 0.1


def test_mlflow_metrics_read_back_with_search_runs(tmp_path, monkeypatch, clean_mlflow_env):
    import mlflow
    from mlflow.tracking import MlflowClient

    log_run(make_logger(["mlflow"], tmp_path))  # default URI: a file store in the run folder
    store = tmp_path / "logs" / "mlruns"
    assert store.is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    runs = mlflow.search_runs(experiment_names=[HPARAMS["study"]])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["tags.mlflow.runName"] == "resnet20/fashion_mnist/seed1"
    assert run["params.model"] == "resnet20"
    assert run["params.recipe.optimizer.lr"] == "0.1"
    assert run["metrics.val_top1"] == HISTORY[2]["val_top1"]
    assert run["metrics.final/test_top1"] == METRICS["test_top1"]
    assert run["metrics.complexity/macs"] == COMPLEXITY["macs"]
    history = MlflowClient(store.as_uri()).get_metric_history(run["run_id"], "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 2.0), (1, 1.5), (2, 1.1)]


def test_mlflow_many_params_are_logged_in_batches(tmp_path, monkeypatch, clean_mlflow_env):
    import mlflow

    settings = {**HPARAMS, "grid": {f"k{i}": i for i in range(150)}}  # over MLflow's 100 per batch
    logger = make_logger(["mlflow"], tmp_path)
    logger.log_hparams(settings)
    logger.close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "logs" / "mlruns").as_uri())
    run = mlflow.search_runs(experiment_names=[HPARAMS["study"]]).iloc[0]
    assert run["params.grid.k149"] == "149"


# --- failures never reach the caller ----------------------------------------------------------------

class Exploding:
    name = "exploding"

    def __init__(self):
        self.closed = False

    def log_hparams(self, settings):
        pass

    def log_epoch(self, entry):
        raise OSError(28, "No space left on device")

    def log_final(self, metrics, complexity):
        raise AssertionError("a switched-off logger must not be called again")

    def close(self):
        self.closed = True


def test_failing_logger_warns_once_and_the_others_continue(tmp_path):
    exploding = Exploding()
    logger = make_logger(["csv"], tmp_path)
    logger._backends.insert(0, exploding)
    with pytest.warns(RuntimeWarning) as caught:
        log_run(logger)
    messages = [str(w.message) for w in caught if "archbench" in str(w.message)]
    assert len(messages) == 1
    assert "exploding logger failed in log_epoch" in messages[0] and "No space left" in messages[0]
    assert exploding.closed  # its resources are released when it is switched off
    assert pd.read_csv(tmp_path / "logs" / "metrics.csv")["epoch"].tolist() == [0, 1, 2]
    assert (tmp_path / "logs" / "final.csv").is_file()


def test_tensorboard_disk_full_mid_run_is_switched_off(tmp_path, monkeypatch):
    logger = make_logger(["tensorboard", "csv"], tmp_path)
    tensorboard = next(b for b in logger._backends if isinstance(b, TensorBoardBackend))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard.writer, "add_scalar", disk_full)
    with pytest.warns(RuntimeWarning, match="tensorboard logger failed in log_epoch") as caught:
        log_run(logger)
    assert sum("archbench" in str(w.message) for w in caught) == 1
    assert pd.read_csv(tmp_path / "logs" / "metrics.csv")["epoch"].tolist() == [0, 1, 2]


def test_mlflow_server_gone_warns_once(tmp_path, clean_mlflow_env):
    # Port 9 (discard) has no listener here: the connection is refused at once and never retried.
    logger = make_logger(["mlflow", "csv"], tmp_path, mlflow_uri="http://127.0.0.1:9")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_run(logger)
    messages = [str(w.message) for w in caught if "archbench" in str(w.message)]
    assert len(messages) == 1 and "mlflow logger failed in log_hparams" in messages[0]
    assert pd.read_csv(tmp_path / "logs" / "metrics.csv")["epoch"].tolist() == [0, 1, 2]


def test_logger_that_cannot_start_is_skipped_with_a_warning(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the logs folder should be")
    with pytest.warns(RuntimeWarning, match="tensorboard logger could not start"):
        logger = make_logger(["tensorboard"], tmp_path)
    assert logger.names == []
    log_run(logger)  # and the run goes on
