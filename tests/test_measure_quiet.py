"""Speed measured in quiet: the load check (archbench.quiet), task=measure, and the sweep's closing pass."""
import json

import pytest

from helpers import FAST, archbench, record_path
from archbench.quiet import QuietSettings, judge, legacy_under_load, measure_quietly, wait_for_quiet

NO_EVAL = [*FAST, "evaluate.after_train=false"]
# Quiet whatever the shared test machine is doing, so the skip logic can be tested; and never quiet.
ALWAYS_QUIET = ["measure.quiet.max_load_per_thread=1000", "measure.quiet.timeout_s=0"]
NEVER_QUIET = ["measure.quiet.max_load_per_thread=0", "measure.quiet.timeout_s=0"]


class FakeClock:
    def __init__(self, loads):
        self.loads, self.now = list(loads), 0.0

    def load(self):
        return self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]

    def sleep(self, seconds):
        self.now += seconds

    def clock(self):
        return self.now


def test_wait_for_quiet_returns_once_the_load_falls_under_the_limit():
    fake = FakeClock([3.0, 2.0, 0.9, 0.4])
    load, waited = wait_for_quiet(QuietSettings(max_load_per_thread=0.5, timeout_s=60, poll_s=5), 2,
                                  fake.load, fake.sleep, fake.clock)
    assert load == 0.9 and waited == 10  # limit 0.5 x 2 threads = 1.0: the third reading is under it


def test_wait_for_quiet_gives_up_at_the_timeout():
    fake = FakeClock([5.0])
    load, waited = wait_for_quiet(QuietSettings(timeout_s=7, poll_s=5), 1, fake.load, fake.sleep, fake.clock)
    assert load == 5.0 and waited == 7


def test_a_busy_machine_marks_the_figure_under_load_and_a_quiet_one_does_not():
    settings = QuietSettings(max_load_per_thread=0.5, timeout_s=0)
    quiet, under = judge(settings, 1, before=0.3, during=0.35, after=0.36, elapsed_s=3, waited_s=0)
    assert under is None and quiet["checked"] and quiet["limit"] == 0.5
    _, under = judge(settings, 1, before=1.4, during=1.5, after=1.5, elapsed_s=3, waited_s=0)
    assert "1-minute load 1.40 before measuring" in under["reason"]
    # quiet before, but something started while measuring (more than this measurement's own share)
    _, under = judge(settings, 1, before=0.2, during=1.2, after=0.9, elapsed_s=3, waited_s=0)
    assert under["reason"].startswith("1-minute load rose to 1.20 while measuring")


def test_measure_quietly_records_the_load_and_marks_under_load():
    result = measure_quietly(lambda: {"x": 1, "under_load": "stale"}, QuietSettings(timeout_s=0, poll_s=0.01), 1,
                             loadavg=lambda: 4.0)
    assert result["x"] == 1 and result["quiet"]["load_before"] == 4.0 and result["quiet"]["load_after"] == 4.0
    assert "4.00" in result["under_load"]["reason"]
    calm = measure_quietly(lambda: {"x": 1}, QuietSettings(timeout_s=0, poll_s=0.01), 1, loadavg=lambda: 0.1)
    assert "under_load" not in calm and calm["quiet"]["load_during_max"] == 0.1


def test_figures_from_before_quiet_checks_are_judged_on_their_recorded_load():
    assert "3.00" in legacy_under_load({"load_avg_1m": 3.0, "threads": 1})["reason"]
    assert legacy_under_load({"load_avg_1m": 0.2, "threads": 1}) is None
    assert legacy_under_load({"threads": 1}) is None  # no evidence either way
    checked = {"quiet": {"checked": True}, "under_load": {"reason": "busy"}}
    assert legacy_under_load(checked) == {"reason": "busy"}


def test_bad_quiet_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="measure.quiet.max_load"):
        QuietSettings.from_config({"max_load": 1})
    with pytest.raises(ValueError, match="timeout_s=-1"):
        QuietSettings.from_config({"timeout_s": -1})


@pytest.mark.slow
def test_task_measure_rewrites_only_the_speed_sections_and_skips_quiet_records(tmp_path):
    out = archbench(NO_EVAL, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    path = record_path(tmp_path)
    before = json.loads(path.read_text())
    assert before["latency"]["quiet"]["checked"]  # a single run checks the load too (without waiting)

    busy = archbench([*NO_EVAL, "task=measure", *NEVER_QUIET], tmp_path)
    assert busy.returncode == 0, busy.stderr[-2000:]
    after = json.loads(path.read_text())
    assert after["latency"]["measured_by"] == "task=measure" and after["latency"]["under_load"]["reason"]
    assert after["latency"]["replaced"]["batch_1_median_ms"] == before["latency"]["batch_1"]["median_ms"]
    assert after["measure"]["device_peak"]["quiet"]["checked"] and after["measure"]["under_load"]
    assert after["measure"]["mfu"] == pytest.approx(after["measure"]["achieved_flops_per_s"]
                                                     / after["measure"]["device_peak_flops_per_s"])
    for key, value in before.items():
        if key not in ("latency", "measure"):
            assert json.dumps(after[key]) == json.dumps(value), key

    quiet = archbench([*NO_EVAL, "task=measure", *ALWAYS_QUIET], tmp_path)  # under load before: measured again
    assert quiet.returncode == 0 and "under_load" not in json.loads(path.read_text())["latency"]
    stamp = json.loads(path.read_text())["latency"]["measured_at"]
    again = archbench([*NO_EVAL, "task=measure", *ALWAYS_QUIET], tmp_path)
    assert again.returncode == 0 and "already measured in quiet" in again.stdout + again.stderr
    forced = archbench([*NO_EVAL, "task=measure", *ALWAYS_QUIET, "force=true"], tmp_path)
    assert forced.returncode == 0 and json.loads(path.read_text())["latency"]["replaced"]["batch_1_median_ms"] \
        == before["latency"]["batch_1"]["median_ms"]  # the first figure replaced is the one kept
    assert stamp  # measured_at present on every re-measurement
    quiet_figure = json.loads(path.read_text())["latency"]
    loaded = archbench([*NO_EVAL, "task=measure", *NEVER_QUIET, "force=true"], tmp_path)
    assert loaded.returncode == 0 and "kept its quiet latency figure" in loaded.stdout + loaded.stderr
    assert json.loads(path.read_text())["latency"] == quiet_figure  # never a loaded figure over a quiet one

    # a record whose settings fingerprint differently (an older archbench): the study's one record of
    # that model and seed is measured
    moved = path.parent.parent.with_name("older-variant")
    path.parent.parent.rename(moved)
    older = archbench([*NO_EVAL, "task=measure", *ALWAYS_QUIET, "force=true"], tmp_path)
    assert older.returncode == 0 and "no record of this exact identity" in older.stdout + older.stderr
    assert json.loads((moved / "seed0" / "record.json").read_text())["latency"]["measured_at"] >= stamp


def test_task_measure_without_a_record_names_where_it_looked(tmp_path):
    out = archbench([*NO_EVAL, "task=measure"], tmp_path)
    assert out.returncode == 2 and "task=measure found no record" in out.stderr, out.stderr[-2000:]


def test_task_measure_refuses_a_parallel_launcher(tmp_path):
    out = archbench(["-m", *NO_EVAL, "task=measure", "hydra/launcher=local_parallel", "threads=1"], tmp_path)
    assert out.returncode == 1 and "one model at a time" in out.stdout + out.stderr


@pytest.mark.slow
def test_a_parallel_sweep_measures_speed_after_training_one_model_at_a_time(tmp_path):
    out = archbench(["-m", "model=resnet20,preact_resnet20", *NO_EVAL, *ALWAYS_QUIET,
                     "hydra/launcher=local_parallel", "threads=1"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for model in ("resnet20", "preact_resnet20"):
        record = json.loads(record_path(tmp_path, model).read_text())
        latency = record["latency"]
        assert latency["replaced"]["deferred"]  # not measured inside the training job
        assert latency["measured_by"] == "task=measure" and latency["quiet"]["checked"]
        assert latency["threads"] == 1 and latency["batch_1"]["median_ms"] > 0
    assert "measurement pass: 2 measured" in out.stdout + out.stderr


def test_a_machine_that_stays_busy_costs_one_timeout_per_pass_not_one_per_model(monkeypatch):
    import time

    import archbench.quiet as quiet

    monkeypatch.setattr(quiet, "_OUT_OF_PATIENCE", [False])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    settings = QuietSettings(timeout_s=0.05, poll_s=0.01)
    first = measure_quietly(lambda: {}, settings, 1, loadavg=lambda: 3.0, sleep=sleep)
    assert first["under_load"] and first["quiet"]["settings"]["timeout_s"] == 0.05 and slept
    waited = len(slept)
    second = measure_quietly(lambda: {}, settings, 1, loadavg=lambda: 3.0, sleep=sleep)
    assert second["under_load"] and len(slept) == waited  # no second wait
    measure_quietly(lambda: {}, settings, 1, loadavg=lambda: 0.1, sleep=sleep)  # quiet again
    measure_quietly(lambda: {}, settings, 1, loadavg=lambda: 3.0, sleep=sleep)
    assert len(slept) > waited  # patience back


def test_the_environment_caps_the_wait_for_quiet(monkeypatch):
    from archbench.quiet import MAX_WAIT_ENV

    monkeypatch.setenv(MAX_WAIT_ENV, "3")
    assert QuietSettings.from_config({"timeout_s": 120}).timeout_s == 3
    monkeypatch.delenv(MAX_WAIT_ENV)
    assert QuietSettings.from_config({"timeout_s": 120}).timeout_s == 120


def test_task_measure_on_another_machine_names_it_and_leaves_the_training_machine_s_mfu(tmp_path, monkeypatch):
    from helpers import fixture_record, write_record
    from archbench.run import remeasure
    from archbench.record import read_record
    from archbench.settings import MeasureSettings

    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    record["env"].update(device="cpu", cpu_model="AMD EPYC", threads=1)
    record["train"].update(img_per_s=100.0, mfu=0.3, device_peak={"flops_per_s": 1e9})
    record["complexity"]["flops_train"] = 1e6
    write_record(tmp_path, record, "v")
    path = next(tmp_path.rglob("record.json"))
    monkeypatch.setattr(remeasure, "_latency", lambda *a: {
        "device": "cpu", "device_name": "Intel Xeon", "threads": 1,
        "batch_1": {"median_ms": 1.0}, "throughput": {"img_per_s": 10.0}})
    monkeypatch.setattr(remeasure, "_peak_section", lambda *a: pytest.fail("another machine's peak measured"))
    settings = MeasureSettings.from_config({"quiet": {"max_load_per_thread": 1000, "timeout_s": 0}})
    status, _ = remeasure.remeasure_record(path, settings, device="cpu", threads=1)
    after = read_record(path)
    assert status == "measured" and "the run was trained on AMD EPYC" in after["latency"]["other_machine"]
    assert "measure" not in after and after["train"]["mfu"] == 0.3
    assert after["latency"]["measured_with"]["git_commit"] and after["latency"]["measured_with"]["cpu_model"]
    assert not remeasure.needs_measuring(after, "Intel Xeon")  # quiet; the peak is the training machine's
    assert remeasure.needs_measuring(after, "AMD EPYC")  # back on the training machine: measured there
    monkeypatch.setattr(remeasure, "_this_machine", lambda device: "Intel Xeon")
    assert remeasure.remeasure_record(path, settings, device="cpu", threads=1)[0] == "skipped"


def test_on_a_gpu_quiet_means_no_other_process_on_it_and_a_free_host_core(monkeypatch):
    from archbench.quiet import host_limit

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    settings = QuietSettings(max_load_per_thread=0.5, timeout_s=60, poll_s=5)
    assert host_limit(settings, 1) == 0.5 and host_limit(settings, 1, on_gpu=True) == 15
    # a 16-core host at load 9 after a sweep is quiet for a GPU figure once the sweep's processes are gone
    fake = FakeClock([9.0])
    others = [[4242], [4242], []]
    load, waited = wait_for_quiet(settings, 1, fake.load, fake.sleep, fake.clock,
                                  gpu_neighbours=lambda: others.pop(0) if len(others) > 1 else others[0])
    assert load == 9.0 and waited == 10
    quiet, under = judge(settings, 1, 9.0, 9.5, 9.4, 3, 10, {"before": [], "after": []})
    assert under is None and quiet["limit"] == 15
    # another process on the GPU while measuring: marked, whatever the host's load
    _, busy = judge(settings, 1, 0.1, 0.1, 0.1, 3, 60, {"before": [4242], "after": [4242, 77]})
    assert "2 other processes used the GPU" in busy["reason"] and "pid 77, 4242" in busy["reason"]
    # NVML unreadable: said in the record, not counted as busy, and no wait on it
    quiet, under = judge(settings, 1, 0.1, 0.1, 0.1, 3, 0, {"before": None, "after": None})
    assert under is None and "could not be read" in quiet["gpu_note"]


def test_measure_quietly_waits_on_a_busy_gpu_then_marks_the_figure(monkeypatch):
    import archbench.quiet as quiet_module

    monkeypatch.setattr(quiet_module, "_OUT_OF_PATIENCE", [False])
    result = measure_quietly(lambda: {"x": 1}, QuietSettings(timeout_s=0.05, poll_s=0.01), 1, loadavg=lambda: 0.1,
                             gpu_neighbours=lambda: [99])
    assert result["quiet"]["waited_s"] >= 0 and "1 other process used the GPU" in result["under_load"]["reason"]
    assert quiet_module._OUT_OF_PATIENCE[0]  # the next model of the pass does not wait again


def test_a_run_starting_on_busy_cores_says_so(monkeypatch):
    from archbench.quiet import shared_cores_note

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert shared_cores_note(1, loadavg=lambda: 0.9) is None  # one core free for this run's one thread
    note = shared_cores_note(1, loadavg=lambda: 2.3)
    assert "the cores are shared: 1-minute load 2.30 on 2 cores" in note and "1 thread" in note
    assert "marked under load" in note
    assert shared_cores_note(2, loadavg=lambda: None) is None  # unknown load: nothing claimed


def test_threads_null_takes_the_cores_left_free_and_never_more_than_the_default():
    from archbench.quiet import threads_left_free

    assert threads_left_free(2, loadavg=lambda: 0.3, cores=2) == (None, None)  # idle: torch's default stands
    threads, why = threads_left_free(2, loadavg=lambda: 1.1, cores=2)  # one 1-thread job beside it
    assert threads == 1 and "1-minute load 1.10 on 2 cores" in why and "1 thread left free rather than 2" in why
    assert threads_left_free(2, loadavg=lambda: 3.6, cores=2)[0] == 1  # every core busy: still one thread
    assert threads_left_free(8, loadavg=lambda: 3.0, cores=8)[0] == 5
    # An environment that already lowered torch's default (OMP_NUM_THREADS=1) is never raised.
    assert threads_left_free(1, loadavg=lambda: 1.0, cores=2) == (None, None)
    assert threads_left_free(2, loadavg=lambda: None, cores=2) == (None, None)  # unknown load: nothing changes


def test_the_entry_point_sets_the_free_cores_only_for_a_cpu_run_with_threads_null(monkeypatch):
    import torch

    from archbench.__main__ import apply_threads

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    apply_threads(None, "cpu", loadavg=lambda: 1.2)  # one core busy: the free one
    apply_threads(None, "cpu", loadavg=lambda: 0.1)  # idle: torch's default, untouched
    apply_threads(None, "cuda", loadavg=lambda: 1.2)  # a GPU run: its host threads are not the question
    apply_threads(2, "cpu", loadavg=lambda: 1.2)  # set explicitly: as asked
    assert calls == [1, 2]
