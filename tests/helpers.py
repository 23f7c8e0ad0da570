"""Shared by the CLI, sweep and fault tests: run the real `python -m archbench` in a subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

# A few seconds per run: tiny synthetic data, a couple of steps, a short latency measurement.
FAST = ["data=synthetic", "data.synthetic_size=300", "data.image_size=16", "train.batch_size=32",
        "train.eval_batch_size=128", "train.budget.steps=4", "measure.warmup=1", "measure.min_reps=2",
        "measure.min_time_s=0.05", "measure.batch_size=4"]


def archbench(args, results_dir, timeout=600, env=None, wait=True):
    cmd = [sys.executable, "-m", "archbench", *args, f"results_dir={results_dir}"]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def record_path(results_dir, model="resnet20", data="synthetic", seed=0, study="default"):
    return Path(results_dir) / "runs" / study / data / model / f"seed{seed}" / "record.json"


def load(path):
    return json.loads(Path(path).read_text())
