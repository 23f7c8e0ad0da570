"""End to end: the real CLI trains on real Fashion-MNIST and writes a record with the documented fields."""
import json
import time

import pytest

from helpers import FAST, FMNIST, archbench, load, record_path

needs_fmnist = pytest.mark.skipif(not FMNIST.exists(), reason="needs Debian dataset-fashion-mnist (make data)")


FMNIST_RUN = ["model=resnet20", "data=fashion_mnist", "data.train_size=512", "data.val_size=500",
              "train.batch_size=64", "train.budget.epochs=2", "seed=3", "measure.warmup=1", "measure.min_reps=3",
              "measure.min_time_s=0.1", "measure.batch_size=8", "evaluate.test_subset=300", "evaluate.severities=[1,5]"]


@pytest.fixture(scope="module")
def fmnist_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    out = archbench(FMNIST_RUN + [f"data.cache_dir={cache}"], results)
    assert out.returncode == 0, out.stdout + out.stderr
    return results, out


@needs_fmnist
def test_record_fields_types_and_ranges(fmnist_run):
    results, out = fmnist_run
    record = load(record_path(results, "resnet20", "fashion_mnist", seed=3))
    assert record["schema"] == 2 and record["status"] == "complete" and record["task"] == "train"
    assert (record["model"], record["family"], record["data"], record["seed"]) == ("resnet20", "resnet_v1",
                                                                                   "fashion_mnist", 3)
    assert record["synthetic"] is False and record["error"] is None
    assert record["config"]["model"]["name"] == "resnet20" and record["config"]["train"]["budget"]["epochs"] == 2
    env = record["env"]
    assert env["torch"] and env["python"] and env["cpu_model"] and env["threads"] >= 1
    assert env["start_time"] <= env["end_time"]
    ds = record["dataset"]
    assert (ds["train_size"], ds["val_size"], ds["test_size"]) == (512, 500, 10000)
    assert ds["in_chans"] == 1 and ds["image_size"] == 28 and ds["selection"] == "val"
    c = record["complexity"]
    assert c["input_shape"] == [1, 1, 28, 28] and 260_000 < c["params"] < 280_000
    assert c["macs"] > 1e7 and c["flops_forward"] == pytest.approx(2 * c["macs"], rel=0.02)
    assert record["latency"]["device"] == "cpu" and record["latency"]["batch_1"]["median_ms"] > 0
    train = record["train"]
    assert train["budget"] == {"epochs": 2} and train["epochs"] == 2 and train["steps"] == 2 * (512 // 64)
    assert train["wall_s"] > 0 and train["img_per_s"] > 0 and 0 < train["mfu"] < 1
    m = record["metrics"]
    for key in ("val_top1", "test_top1", "test_top5"):
        assert 0 <= m[key] <= 100
    assert m["test_top5"] >= m["test_top1"] and m["best_epoch"] in (0, 1)
    assert m["test_top1"] > 10  # two short epochs of a real dataset beat chance
    assert [h["epoch"] for h in record["history"]] == [0, 1]
    for h in record["history"]:
        assert set(h) >= {"epoch", "train_loss", "train_top1", "val_loss", "val_top1", "lr", "epoch_s"}
        assert h["train_loss"] > 0 and 0 <= h["val_top1"] <= 100 and h["lr"] >= 0
    assert (record_path(results, "resnet20", "fashion_mnist", seed=3).parent / "run.log").exists()
    assert not (record_path(results, "resnet20", "fashion_mnist", seed=3).parent / "checkpoint.ckpt").exists()


@needs_fmnist
def test_rerun_skips_finished_record_without_building(fmnist_run):
    results, _ = fmnist_run
    path = record_path(results, "resnet20", "fashion_mnist", seed=3)
    before = path.stat().st_mtime_ns
    out = archbench(FMNIST_RUN + ["data.cache_dir=/nonexistent/elsewhere"], results)  # where data is cached is not identity
    assert out.returncode == 0 and "skip" in out.stdout + out.stderr
    assert path.stat().st_mtime_ns == before
    assert "building" not in out.stdout + out.stderr  # skipped before any data or model is touched


def test_profile_task_needs_no_dataset_files(tmp_path):
    out = archbench(["task=profile", "model=resnet18", "data=imagenet", "data.root=/nonexistent",
                     "measure.warmup=1", "measure.min_reps=2", "measure.min_time_s=0.05", "measure.batch_size=2"],
                    tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    record = load(record_path(tmp_path, "resnet18", "imagenet"))
    assert record["status"] == "complete" and record["task"] == "profile"
    assert record["metrics"] is None and record["train"] is None
    assert record["complexity"]["macs"] == pytest.approx(1.82e9, rel=0.01)  # timm: resnet18 1.82 GMACs


def test_synthetic_records_are_flagged(tmp_path):
    out = archbench(["model=resnet20", *FAST], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert load(record_path(tmp_path))["synthetic"] is True


def test_torchrun_two_gloo_processes_write_one_record(tmp_path):
    import subprocess
    import sys

    from helpers import REPO

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "archbench", *FAST,
           "threads=1", f"results_dir={tmp_path}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    records = list(tmp_path.glob("runs/**/record.json"))
    assert len(records) == 1
    record = load(records[0])
    assert record["status"] == "complete" and record["train"]["world_size"] == 2
    assert record["train"]["batch_size"] == 64 and record["train"]["steps"] == 4  # global batch = 2 x 32


def test_torchrun_seconds_budget_stops_every_rank_at_the_same_step(tmp_path):
    # Each rank's own clock would end the loop at different steps and hang the next all-reduce; the
    # stop is decided collectively on rank 0's clock, so the run finishes (a hang fails by timeout).
    import subprocess
    import sys

    from helpers import REPO

    args = [a for a in FAST if not a.startswith("train.budget")] + ["train.budget.seconds=2", "threads=1",
                                                                   "data.synthetic_size=2000"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "archbench", *args,
           f"results_dir={tmp_path}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = load(next(tmp_path.glob("runs/**/record.json")))
    assert record["status"] == "complete" and record["train"]["world_size"] == 2
    assert record["train"]["wall_s"] >= 2.0
    assert record["train"].get("mfu_basis") in (None, "per device")


def test_any_timm_model_is_recorded_with_its_timm_name(tmp_path):
    out = archbench(["task=profile", "model=timm", "model.name=resnet10t", "data=synthetic", "measure.warmup=1",
                     "measure.min_reps=2", "measure.min_time_s=0.05", "measure.batch_size=2"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    record = load(record_path(tmp_path, "resnet10t"))
    assert record["model"] == "resnet10t" and record["family"] == "timm"
    assert record["complexity"]["stem"] == "cifar"  # 32 px input: the small-input stem was used


def test_deterministic_mode_gives_identical_histories(tmp_path):
    timing = ("epoch_s", "img_per_s", "elapsed_s")
    histories = []
    for name in ("a", "b"):
        out = archbench([*FAST, "train.deterministic=true", "train.budget.steps=20", "seed=5"], tmp_path / name)
        assert out.returncode == 0, out.stdout + out.stderr
        record = load(record_path(tmp_path / name, seed=5))
        histories.append([{k: v for k, v in h.items() if k not in timing} for h in record["history"]])
        histories[-1].append(record["metrics"])
    assert histories[0] == histories[1]
    assert len(histories[0]) > 2  # several epochs were compared, not an empty list


def test_a_cached_peak_below_what_training_achieves_is_measured_again(tmp_path):
    """A peak cached while the machine was busy is too low, and MFU against it exceeds 1: the run re-measures it."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [*FAST, "train.amp=off", "train.channels_last=false"]
    first = archbench(args, tmp_path / "a", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [entry] = (tmp_path / "cache" / "archbench" / "peak").glob("cpu-fp32-*.json")
    entry.write_text(json.dumps({**load(entry), "flops_per_s": 1.0, "load_avg_1m": 7.5}))  # as if measured under load

    second = archbench([*args, "seed=1"], tmp_path / "b", env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    train = load(record_path(tmp_path / "b", seed=1))["train"]
    assert "re-measuring" in second.stdout + second.stderr
    assert train["device_peak_flops_per_s"] > 1.0 and train["device_peak"]["cached"] is False
    assert 0 < train["mfu"] < 1 and train["mfu"] == pytest.approx(train["achieved_flops_per_s"]
                                                                  / train["device_peak_flops_per_s"])
    assert load(entry)["flops_per_s"] == train["device_peak_flops_per_s"]  # the cache now holds the new figure


@needs_fmnist
def test_per_image_outcomes_are_written_beside_the_record(fmnist_run):
    from archbench.outcomes import read_outcomes

    results, _out = fmnist_run
    path = record_path(results, "resnet20", "fashion_mnist", seed=3)
    record = load(path)
    outcomes = read_outcomes(path, record)  # also checks that they reproduce the record's test top-1
    assert record["test_outcomes"]["images"] == record["dataset"]["test_size"] == len(outcomes["correct"])
