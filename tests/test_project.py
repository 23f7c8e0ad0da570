"""Time to accuracy projected onto this machine: steps to a target from the curves, times a probed step time."""
import math
import subprocess
import sys

import pandas as pd
import pytest

from archbench.results.projection import (curve, first_reaching, has_within_epoch_curve, project, reachable_target,
                                          time_to_target)
from helpers import FAST, REPO, archbench


def test_a_curve_joins_the_quarter_points_and_the_epoch_ends_in_step_order():
    record = {"train": {"val_curve": [{"step": 5, "val_top1": 30.0, "elapsed_s": 1.0},
                                      {"step": 15, "val_top1": 55.0, "elapsed_s": 3.0}]},
              "history": [{"epoch": 0, "step": 10, "val_top1": 41.0, "elapsed_s": 2.0},
                          {"epoch": 1, "step": 20, "val_top1": 60.0, "elapsed_s": 4.0}]}
    points = curve(record)
    assert list(points.step) == [5, 10, 15, 20] and list(points.val_top1) == [30, 41, 55, 60]
    assert first_reaching(points, 50.0) == (15.0, 3.0)
    assert first_reaching(points, 61.0) is None


def runs_with_curves():
    """Two models, three runs each; model b learns in twice the steps of model a."""
    rows, run_curves = [], {}
    for model, slow in (("a", 1), ("b", 2)):
        for seed, machine in ((0, "here"), (1, "here"), (2, "there")):
            path = f"{model}{seed}"
            rows.append({"study": "s", "data": "d", "model": model, "variant": "v", "seed": seed, "task": "train",
                         "path": path, "hardware": "here; there", "trained_on": machine})
            steps = [10 * k * slow for k in range(1, 9)]
            run_curves[path] = pd.DataFrame({"step": steps, "val_top1": [10.0 * k + 5 * seed for k in range(1, 9)],
                                             "elapsed_s": [0.1 * s for s in steps]})
    return pd.DataFrame(rows), run_curves


def test_projection_is_steps_to_target_times_the_step_time_here():
    runs, run_curves = runs_with_curves()
    assert reachable_target(runs, run_curves) == 80.0  # the slowest run's best
    table = project(runs, run_curves, {("s", "a", "v"): 0.5, ("s", "b", "v"): 0.2}, here="here", target=50,
                    budget_s=30)
    a, b = table.set_index("model").loc["a"], table.set_index("model").loc["b"]
    # seeds 0, 1, 2 reach 50% at the 5th, 5th and 4th point: steps 50, 50, 40 (model b: twice that)
    assert a.steps == pytest.approx(140 / 3) and b.steps == pytest.approx(280 / 3)
    assert a.steps_low < a.steps < a.steps_high
    assert a.projected_s == pytest.approx(a.steps * 0.5) and b.projected_s == pytest.approx(b.steps * 0.2)
    # measured: only the two runs made here (0.1 s per step on their machine)
    assert a.measured_runs == 2 and a.measured_s == pytest.approx(5.0)
    assert bool(b["first"]) and not bool(a["first"])  # b needs more steps but each is far cheaper here
    # within 30 s here: a gets 60 steps (best 60, 65, 70%), b 150 steps (70, 75, 80%)
    assert bool(b.best_in_budget) and b.best_val_top1_in_budget == pytest.approx(75.0)
    assert a.best_val_top1_in_budget == pytest.approx(65.0)


def test_time_to_target_is_per_model_and_the_machine_that_trained_the_runs():
    runs, run_curves = runs_with_curves()
    table = time_to_target(runs, run_curves, target=50).set_index(["model", "machine"])
    assert list(table.index) == [("a", "here"), ("a", "there"), ("b", "here"), ("b", "there")]
    # model a's runs here reach 50% at step 50 (both seeds, 5 s), its run there at step 40 (4 s)
    here, there = table.loc[("a", "here")], table.loc[("a", "there")]
    assert (here.runs, here.reached, here.steps, here.seconds) == (2, 2, 50, pytest.approx(5.0))
    assert math.isnan(there.seconds_low) and there.seconds == pytest.approx(4.0)  # one run: no interval
    # without a target: the highest whole percent every run reached (80%, the slowest run's best)
    assert set(time_to_target(runs, run_curves).target_top1) == {80.0}
    # never reached: counted, with no time
    never = time_to_target(runs, run_curves, target=95)
    assert (never.reached == 0).all() and never.seconds.isna().all()


def test_time_to_target_needs_curve_points_inside_epochs(tmp_path):
    from helpers import fixture_record, write_record

    from archbench import results

    for seed in (0, 1):
        record = fixture_record("s", "resnet20", "resnet_v1", seed, test_top1=50.0, val_top1=50.0)
        record["train"]["val_curve"] = [{"step": 5, "val_top1": 30.0, "elapsed_s": 1.0}] if seed == 0 else []
        write_record(tmp_path, record, "v")
    runs = results.load(tmp_path)
    assert not has_within_epoch_curve(runs)  # seed 1 has epoch ends only
    assert has_within_epoch_curve(runs[runs.seed == 0])


def test_a_model_that_never_reaches_the_target_has_no_projection():
    runs, run_curves = runs_with_curves()
    table = project(runs, run_curves, {("s", "a", "v"): 0.5, ("s", "b", "v"): 0.2}, here=None, target=95)
    assert (table.reached == 0).all() and table.projected_s.isna().all() and not table["first"].any()


@pytest.mark.slow
def test_project_on_a_tiny_study_trained_here_projects_and_measures_each_model(tmp_path):
    """Two models with a learning curve every quarter epoch, trained here; the command probes each and
    prints a projected time to a target both reached, beside the time the runs measured."""
    out = archbench(["-m", "model=resnet20,wrn_16_2", *[a for a in FAST if not a.startswith("train.budget")],
                     "train.budget.epochs=3", "train.val_per_epoch=4", "evaluate.after_train=false", "threads=1",
                     "study=tiny_projection"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    csv = tmp_path / "projection.csv"
    done = subprocess.run([sys.executable, "-m", "archbench.report", "project", f"results_dir={tmp_path}",
                           "include_synthetic=true", "budget_s=5", f"out={csv}", "timed_steps=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "ARCHBENCH_QUIET_MAX_WAIT_S": "0"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tiny_projection on synthetic: time to" in done.stdout and "first to" in done.stdout
    table = pd.read_csv(csv)
    assert sorted(table.model) == ["resnet20", "wrn_16_2"]
    assert (table.reached == table.runs).all()  # the default target is one every run reached
    assert all(math.isfinite(value) and value > 0 for value in table.projected_s)
    assert (table.measured_runs == 1).all() and table.measured_s.notna().all()  # trained on this machine


def test_project_refuses_a_bad_target_naming_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "archbench.report", "project", f"results_dir={tmp_path}",
                           "target=-3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "target='-3' must be a positive number" in done.stderr
