"""Shared by the CLI, sweep and fault tests: run the real `python -m archbench` in a subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

from archbench import record as rec

REPO = Path(__file__).resolve().parent.parent
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

# A few seconds per run: tiny synthetic data, a couple of steps, a short latency measurement.
FAST = ["data=synthetic", "data.synthetic_size=300", "data.image_size=16", "train.batch_size=32",
        "train.eval_batch_size=128", "train.budget.steps=4", "measure.warmup=1", "measure.min_reps=2",
        "measure.min_time_s=0.05", "measure.batch_size=4", "evaluate.corruptions=[gaussian_noise,contrast]",
        "evaluate.severities=[1]"]


def archbench(args, results_dir, timeout=600, env=None, wait=True):
    cmd = [sys.executable, "-m", "archbench", *args, f"results_dir={results_dir}"]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def load(path):
    """A record through the record module (its only reader); any other JSON file (a cache entry) as it is."""
    if Path(path).name == rec.RECORD_FILE:
        return rec.read_record(path)
    return json.loads(Path(path).read_text())


def run_folder(results_dir, model="resnet20", data="synthetic", seed=0, study="default"):
    """The one run folder of a model and seed (its variant folder is named by the settings' fingerprint)."""
    found = sorted((Path(results_dir) / "runs" / study / data / model).glob(f"*/seed{seed}"))
    assert len(found) <= 1, f"several variants of {model} seed {seed}: {found}"
    return found[0] if found else Path(results_dir) / "runs" / study / data / model / "NO-RUN-YET" / f"seed{seed}"


def record_path(results_dir, model="resnet20", data="synthetic", seed=0, study="default"):
    return rec.record_path(run_folder(results_dir, model, data, seed, study))


def spec_for(args, results_dir):
    """The RunSpec that `python -m archbench <args>` would run, composed with Hydra's compose API."""
    from hydra import compose, initialize_config_dir

    from archbench.__main__ import CONF_DIR, spec_from_config

    overrides = [a for a in args if a not in ("-m", "--multirun")] + [f"results_dir={results_dir}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return spec_from_config(cfg, overrides)


# One hand-written record (tests/fixtures/records) that the report tests copy and edit into whole studies.
FIXTURE_RECORD = rec.record_path(Path(__file__).parent / "fixtures/records/runs/golden/cifar10/resnet20/seed0")


def fixture_record(study: str, model: str, family: str, seed: int, **metrics) -> dict:
    """A copy of the fixture record renamed to `study`/`model`/`seed`, with the given metrics."""
    record = rec.read_record(FIXTURE_RECORD)
    record.update(study=study, model=model, family=family, seed=seed)
    record["config"].update(study=study, seed=seed, model={"name": model})
    record["metrics"].update(metrics)
    return record


def write_record(results_dir: Path, record: dict, variant: str) -> None:
    """Write `record` where a run writes it: runs/<study>/cifar10/<model>/<variant>/seed<k>/record.json."""
    folder = (Path(results_dir) / "runs" / record["study"] / "cifar10" / record["model"] / variant
              / f"seed{record['seed']}")
    folder.mkdir(parents=True)
    rec.write_record(folder, record)
