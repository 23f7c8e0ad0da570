"""task=evaluate: calibration and robustness added to a finished run from its saved weights."""
import json

from helpers import FAST, archbench


def test_evaluate_adds_sections_and_keeps_the_rest_byte_identical(tmp_path):
    out = archbench([*FAST, "evaluate.after_train=false"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    path = next(tmp_path.glob("runs/**/record.json"))
    before = json.loads(path.read_text())
    assert before["calibration"] is None and (path.parent / "weights.pt").exists()
    again = archbench([*FAST, "task=evaluate"], tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    after = json.loads(path.read_text())
    assert after["calibration"]["uncalibrated"]["ece"] >= 0 and after["robustness"]["corruptions"]
    for key, value in before.items():
        if key not in ("calibration", "robustness"):
            assert json.dumps(after[key]) == json.dumps(value), key


def test_evaluate_without_saved_weights_is_a_clear_error(tmp_path):
    out = archbench([*FAST, "evaluate.after_train=false"], tmp_path)
    path = next(tmp_path.glob("runs/**/record.json"))
    (path.parent / "weights.pt").unlink()
    again = archbench([*FAST, "task=evaluate"], tmp_path)
    assert again.returncode == 2 and "no saved weights" in again.stderr, again.stderr[-2000:]
    missing = archbench([*FAST, "task=evaluate", "seed=7"], tmp_path)
    assert missing.returncode == 2 and "needs a complete training record" in missing.stderr


def test_a_logger_failing_mid_run_leaves_a_complete_record_and_csv_rows(tmp_path, monkeypatch):
    import warnings

    import archbench.loggers as loggers
    from archbench.loggers import LoggerSettings
    from test_faults import tiny_spec

    calls = []

    def broken(self, entry):
        calls.append(entry)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loggers.TensorBoardBackend, "log_epoch", broken)
    spec = tiny_spec(tmp_path, measure={"warmup": 1, "min_reps": 2, "min_time_s": 0.01, "batch_size": 2},
                     logger=LoggerSettings.from_config({"tensorboard": {}, "csv": {}}))
    from archbench.run import run
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = run(spec)
    assert result["status"] == "complete" and len(calls) == 1
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert record["status"] == "complete"
    assert (spec.record_dir / "logs" / "metrics.csv").read_text().count("\n") >= 2  # header + one epoch
