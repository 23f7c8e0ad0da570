"""Nothing optional fails a run: a missing corruptions library or logger backend leaves its section out,
with the reason naming the package, and the run stays complete."""
import json
import sys
import warnings

from archbench.evaluate import EvaluateSettings
from archbench.loggers import LoggerSettings
from archbench.run import run
from test_faults import tiny_spec

MEASURE = {"warmup": 1, "min_reps": 2, "min_time_s": 0.01, "batch_size": 2}


def test_missing_imagecorruptions_skips_robustness_and_keeps_the_run_complete(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # `import imagecorruptions` raises ImportError
    settings = EvaluateSettings(corruptions=["contrast"], severities=[1], test_subset=20)
    spec = tiny_spec(tmp_path, measure=MEASURE, evaluate=settings)
    with caplog.at_level("WARNING", logger="archbench"):
        result = run(spec)
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert result["status"] == record["status"] == "complete"
    assert "imagecorruptions-imaug is not installed" in record["robustness"]["skipped"]
    assert "pip install" in record["robustness"]["skipped"]
    assert record["calibration"]["uncalibrated"]["ece"] >= 0  # the rest of the evaluation still ran
    assert "imagecorruptions-imaug" in caplog.text


def test_missing_logger_backend_is_left_out_with_its_reason(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    spec = tiny_spec(tmp_path, measure=MEASURE, logger=LoggerSettings.from_config({"mlflow": {}, "csv": {}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(spec)
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert result["status"] == record["status"] == "complete"
    assert "archbench[mlflow]" in record["logger"]["skipped"]["mlflow"]
    assert (spec.record_dir / "logs" / "metrics.csv").exists()  # the logger that is installed still logs


def test_report_names_why_robustness_is_missing():
    from archbench.record import evaluation_columns

    columns = evaluation_columns({"robustness": {"skipped": "package imagecorruptions-imaug is not installed"}})
    assert columns["corruption_method"] == "not measured (package imagecorruptions-imaug is not installed)"
    assert columns["mean_corruption_top1"] != columns["mean_corruption_top1"]  # NaN: no number invented


def test_latency_is_measured_under_the_shared_measurement_lock(tmp_path, monkeypatch):
    import fcntl

    import archbench.run.execute as run_module

    held = []

    def latency(spec, built, measure_latency):
        with open(tmp_path / run_module.MEASURE_LOCK) as handle:  # another job's attempt must not get it
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return {}

    monkeypatch.setattr(run_module, "_latency", latency)
    spec = tiny_spec(tmp_path, measure=MEASURE)
    assert run(spec)["status"] == "complete" and held == [True]
