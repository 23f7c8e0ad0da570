"""`archbench-report compare BASE NEW`: copies of the committed reference records, edited the way a
regression would change them, must get the verdict and exit code the issue asks for."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from archbench.report import compare
from archbench.results import reproduction
from helpers import FAST, REPO, archbench

REFERENCE = REPO / "results/reference"
STUDY = "demo"  # 6 models x 3 seeds on Fashion-MNIST's 10,000 test images


def copy_studies(dest: Path, *studies: str, seeds=None) -> Path:
    for study in studies:
        for path in (REFERENCE / "runs" / study).glob("*/*/*/seed*/record.json"):
            if seeds is None or int(path.parent.name[4:]) in seeds:
                target = dest / path.relative_to(REFERENCE)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return dest


def edit(folder: Path, model: str, change) -> int:
    paths = sorted(folder.glob(f"runs/*/*/{model}/*/seed*/record.json"))
    for path in paths:
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))
    return len(paths)


def run(capsys, base, new, out, *extra):
    code = compare.main([str(base), str(new), "--out", str(out), *extra])
    captured = capsys.readouterr()
    rows = pd.read_csv(out / "compare.csv") if (out / "compare.csv").exists() else None
    return code, captured.out, captured.err, rows


def row_of(rows, model):
    [row] = rows[rows.model == model].to_dict("records")
    return row


@pytest.fixture
def pair(tmp_path):
    """BASE and NEW: two copies of the demo study."""
    return copy_studies(tmp_path / "base", STUDY), copy_studies(tmp_path / "new", STUDY)


def test_the_reference_against_itself_is_the_same_everywhere(tmp_path, capsys):
    base = copy_studies(tmp_path / "base", STUDY, "imagenet_complexity")  # train and profile records
    code, out, err, rows = run(capsys, base, base, tmp_path / "out")
    assert code == 0, err
    assert len(rows) == 6 + 26
    trained = rows[rows.study == STUDY]
    assert (trained.accuracy == compare.SAME).all() and (trained.test_top1_delta == 0).all()
    assert (rows[rows.study != STUDY].accuracy == compare.NOT_MEASURED).all()  # profiles have no accuracy
    assert (rows.speed == compare.SAME_SPEED).all()
    assert "Accuracy: same within noise (6 of 6 matches)" in out and "Provenance: no difference" in out
    report = (tmp_path / "out" / "README.md").read_text()
    assert "figures/test_top1_delta.png" in report and (tmp_path / "out/figures/test_top1_delta.png").exists()
    assert "<table" in (tmp_path / "out/index.html").read_text()


@pytest.mark.slow
def test_the_whole_committed_reference_against_itself_exits_0(tmp_path, capsys):
    code, out, err, rows = run(capsys, REFERENCE, REFERENCE, tmp_path / "out")
    assert code == 0, err
    assert set(rows.accuracy) <= {compare.SAME, compare.NOT_MEASURED}
    assert set(rows.speed) == {compare.SAME_SPEED} and len(rows) > 100


def test_ten_points_lower_on_every_seed_is_worse_and_exits_1(pair, tmp_path, capsys):
    base, new = pair

    def lower(record):
        record["metrics"]["test_top1"] -= 10.0
    assert edit(new, "densenet_bc_40_12", lower) == 3
    code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    assert code == 1
    row = row_of(rows, "densenet_bc_40_12")
    assert row["accuracy"] == compare.WORSE and row["test_top1_delta"] == pytest.approx(-10.0)
    assert row["test_top1_delta"] + row["test_top1_half"] < 0
    assert "Accuracy: worse beyond noise: demo/densenet_bc_40_12" in out
    assert (rows[rows.model != "densenet_bc_40_12"].accuracy == compare.SAME).all()
    # Nothing else changed, so the note asks for a rerun instead of blaming the machine.
    assert "rerun" in row["note"]


def test_five_hundredths_of_a_point_lower_is_within_noise(pair, tmp_path, capsys):
    base, new = pair

    def lower(record):
        record["metrics"]["test_top1"] -= 0.05
    edit(new, "densenet_bc_40_12", lower)
    code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    assert code == 0
    row = row_of(rows, "densenet_bc_40_12")
    assert row["accuracy"] == compare.SAME and row["test_top1_delta"] == pytest.approx(-0.05)
    # The test set alone (10,000 images) cannot resolve 0.05 points: its part of the interval is larger.
    assert row["test_top1_test_half"] > 0.05
    assert "Accuracy: same within noise (6 of 6 matches)" in out


def _inflate_latency(record, factor=1.5):
    for key in ("median_ms", "p10_ms", "p90_ms", "mean_ms", "min_ms", "iqr_ms"):
        record["latency"]["batch_1"][key] *= factor


def test_latency_one_and_a_half_times_is_slower(pair, tmp_path, capsys):
    base, new = pair
    edit(new, "shufflenet_v2_x2_0", _inflate_latency)
    code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    assert code == 0  # speed never fails the comparison: only accuracy worse beyond noise does
    row = row_of(rows, "shufflenet_v2_x2_0")
    assert row["latency_b1_ms_verdict"] == compare.SLOWER and row["speed"] == compare.SLOWER
    assert row["latency_b1_ms_ratio"] == pytest.approx(1.5) and row["latency_b1_ms_ratio_low"] > 1
    assert row["throughput_img_s_verdict"] == compare.SAME_SPEED
    assert "Speed: slower: demo/shufflenet_v2_x2_0 (latency slower)" in out
    assert (rows[rows.model != "shufflenet_v2_x2_0"].speed == compare.SAME_SPEED).all()


def test_a_lone_provenance_difference_is_named_as_the_likely_cause(pair, tmp_path, capsys):
    base, new = pair

    def two_threads(record):
        _inflate_latency(record)
        record["env"]["threads"] = 2
    edit(new, "shufflenet_v2_x2_0", two_threads)
    _code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    row = row_of(rows, "shufflenet_v2_x2_0")
    assert row["provenance"] == "threads 1 → 2"
    assert row["note"] == "likely cause: threads 1 → 2 (the only difference in provenance)"
    assert "Provenance: threads 1 → 2" in out


def test_runs_on_one_side_only_are_listed(pair, tmp_path, capsys):
    base, new = pair
    shutil.rmtree(new / "runs" / STUDY / "fashion_mnist" / "wrn_16_2")
    code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    assert code == 0 and "wrn_16_2" not in set(rows.model)
    assert "only in BASE (1): demo/wrn_16_2" in out
    assert "Only in BASE: demo/wrn_16_2" in (tmp_path / "out/README.md").read_text()


@pytest.mark.parametrize("side", ["base", "new"])
def test_a_malformed_record_exits_2_naming_the_file(pair, tmp_path, capsys, side):
    folder = dict(zip(("base", "new"), pair))[side]
    [broken] = sorted(folder.glob("runs/*/*/resnet20/*/seed1/record.json"))
    broken.write_text('{"schema": 2, "status": "compl')  # truncated mid-write
    code, out, err, _rows = run(capsys, *pair, tmp_path / "out")
    assert code == 2 and str(broken) in err and "malformed" in err and "corrupt JSON" in err
    assert not (tmp_path / "out").exists()


def test_bad_folders_and_no_match_exit_2(pair, tmp_path, capsys):
    base, new = pair
    code, _out, err, _rows = run(capsys, base, tmp_path / "missing", tmp_path / "out")
    assert code == 2 and "missing" in err and "not a folder" in err
    code, _out, err, _rows = run(capsys, base, new, tmp_path / "out", "--study", "nosuch")
    assert code == 2 and "no usable runs of study 'nosuch'" in err and "studies there: demo" in err

    def other_settings(record):  # NEW ran a longer budget (another variant): nothing matches
        record["identity"]["settings"]["recipe"]["budget"] = {"epochs": 3}
        record["identity"]["variant"] += "-other"
    edit(new, "*", other_settings)
    code, _out, err, _rows = run(capsys, base, new, tmp_path / "out")
    assert code == 2 and "no run in NEW" in err and "-other" in err


def test_out_is_never_a_folder_compare_did_not_write(pair, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    code, _out, err, _rows = run(capsys, *pair, foreign)
    assert code == 2 and "--out" in err and (foreign / "README.md").read_text() == "my notes"
    # An earlier comparison is replaced.
    assert run(capsys, *pair, tmp_path / "out")[0] == 0
    assert run(capsys, *pair, tmp_path / "out")[0] == 0


def test_a_reproduction_inside_the_results_folder_is_compared_with_the_reference_beside_it(tmp_path):
    """The README's `archbench-report compare results/reference results --study demo`: results/
    holds the reference too, which must not be matched with itself or count as duplicates."""
    results = tmp_path / "results"
    copy_studies(results / "reference", STUDY)
    copy_studies(results, STUDY, seeds={0})  # what `archbench -m experiment=demo` runs: seed 0

    def elsewhere(record):
        record["env"].update(git_commit="0123456789abcdef", hostname="laptop", threads=4)
        # The demo's default train.amp=auto (the reference ran off): another variant folder, and
        # on this machine auto chose bf16.
        record["identity"]["settings"]["recipe"].update(amp="auto", channels_last="auto")
        record["identity"]["variant"] += "-auto"
        record["train"]["amp"] = "bf16"
    assert edit(results, "*", elsewhere) == 6  # results/runs only, not results/reference
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-m", "archbench.report", "compare", "results/reference", "results",
                          "--study", STUDY], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr
    rows = pd.read_csv(tmp_path / "results/compare/compare.csv")
    assert len(rows) == 6 and set(rows.seeds_base) == {3} and set(rows.seeds_new) == {1}
    assert rows.provenance.str.match(
        r"setting recipe.amp off → auto; setting recipe.channels_last False → auto; commit [0-9a-f]{7}"
        r"(, [0-9a-f]{7})? → 0123456; threads 1 → 4; training precision off → bf16$").all()
    assert (rows.variant_new == rows.variant + "-auto").all()
    assert rows.provenance.str.contains("threads 1 → 4").all()
    assert (out.returncode == 1) == (rows.accuracy == compare.WORSE).any()
    assert "comparison written to results/compare/README.md" in out.stdout


@pytest.mark.slow  # two training runs in subprocesses
def test_two_deterministic_runs_of_the_same_commit_are_the_same(tmp_path, capsys):
    # No precision probe and no evaluation: the smallest run that still trains, tests and times.
    args = ["model=resnet20", *FAST, "train.deterministic=true", "seed=3", "train.amp=off",
            "train.channels_last=false", "evaluate.after_train=false"]
    for name in ("a", "b"):
        done = archbench(args, tmp_path / name)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    code, out, err, rows = run(capsys, tmp_path / "a", tmp_path / "b", tmp_path / "out", "--include-synthetic")
    assert code == 0, err
    [row] = rows.to_dict("records")
    assert row["accuracy"] == compare.SAME and row["test_top1_delta"] == 0 and row["val_top1_delta"] == 0
    assert not isinstance(row["provenance"], str) or "commit" not in row["provenance"]
    # Without --include-synthetic a smoke test is not a result: nothing usable, bad input.
    assert run(capsys, tmp_path / "a", tmp_path / "b", tmp_path / "out2")[0] == 2


def test_interval_rules():
    # One seed a side and a difference: the seeds' spread is unknown, so no verdict.
    assert reproduction.accuracy_change([70.0], [60.0], 10000)["verdict"] == reproduction.UNKNOWN
    assert reproduction.accuracy_change([70.0], [70.0], 10000)["verdict"] == reproduction.SAME
    # A one-seed side borrows the other side's spread: its seed part is Welch's with the three seeds' spread.
    change = reproduction.accuracy_change([60.0, 62.0, 64.0], [55.0], 10000)
    assert change["delta"] == pytest.approx(-7.0) and change["seed_half"] == pytest.approx(
        4.302652729911275 * 2.0 * math.sqrt(1 / 3 + 1))
    assert reproduction.accuracy_change([60.0, 62.0, 64.0], [50.0], 10000)["verdict"] == reproduction.WORSE
    assert reproduction.accuracy_change([60.0, 62.0, 64.0], [66.5, 67.0, 67.5], 10000)["verdict"] == \
        reproduction.BETTER


def test_a_latency_taken_under_load_is_not_compared_and_a_huge_interval_is_said_in_words(pair, tmp_path, capsys):
    """Issue 43 item 9: x300 from a busy machine is no regression of the code; [-378.97, +438.96] is no interval."""
    base, new = pair

    def loaded(record):
        record["latency"]["batch_1"]["median_ms"] *= 300
        record["latency"]["under_load"] = {"reason": "1-minute load 3.10 before measuring"}

    edit(new, "shufflenet_v2_x2_0", loaded)
    code, out, _err, rows = run(capsys, base, new, tmp_path / "out")
    row = row_of(rows, "shufflenet_v2_x2_0")
    assert code == 0 and row["latency_b1_ms_verdict"] == reproduction.UNDER_LOAD
    assert row["speed"] != compare.SLOWER and "likely cause" not in str(row["note"])
    assert compare._change(30.0, 408.97) == "+30.00 (interval wider than ±100 points)"
    assert compare._change(1.0, 2.0) == "+1.00 [-1.00, +3.00]"
