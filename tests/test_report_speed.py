"""The report never concludes from a speed figure taken under load, never shows an MFU over 100%, and names the
machine each speed was timed on."""
import copy

import pandas as pd

from helpers import fixture_record
from section_context import section_context, tables
from archbench import results
from archbench.record import record_columns
from archbench.report.context import Comparison
from archbench.report.document import html_table
from archbench.report.findings import profile_findings
from archbench.report.sections import profile
from archbench.report.tables import UNDER_LOAD_MARK, mfu_text, speed, speed_note


def columns(record):
    return record_columns(record, "runs/s/cifar10/m/v/seed0/record.json")


def test_a_figure_from_a_busy_machine_is_marked_and_a_quiet_one_is_not():
    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    record["latency"].update(load_avg_1m=3.0, threads=1)
    assert "1-minute load 3.00" in columns(record)["latency_under_load"]
    quiet = copy.deepcopy(record)
    quiet["latency"].update(quiet={"checked": True, "load_before": 0.1})
    assert columns(quiet)["latency_under_load"] is None and columns(quiet)["latency_quiet"]
    loaded = copy.deepcopy(quiet)
    loaded["latency"]["under_load"] = {"reason": "load rose to 2.00 while measuring"}
    assert columns(loaded)["latency_under_load"] == "load rose to 2.00 while measuring"


def test_an_mfu_above_100_percent_is_kept_raw_but_never_a_result():
    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    record["train"].update(mfu=2.16, device_peak={"flops_per_s": 1e9, "load_avg_1m": 6.2,
                                                  "identity": {"threads": 1}})
    row = columns(record)
    assert row["mfu"] is None and row["mfu_raw"] == 2.16 and "MFU 216% is above 100%" in row["mfu_note"]
    assert mfu_text(pd.Series(row)) == f"— {UNDER_LOAD_MARK}"
    # the quiet peak of task=measure replaces the training-time one
    record["measure"] = {"mfu": 0.4, "device_peak": {"quiet": {"checked": True}, "flops_per_s": 5e9}}
    row = columns(record)
    assert row["mfu"] == 0.4 and row["mfu_note"] is None and mfu_text(pd.Series(row)) == "40.0"


def test_no_fastest_model_is_named_when_any_figure_was_taken_under_load():
    group = pd.DataFrame([
        {"label": "a", "family": "f", "model": "a", "macs": 1e6, "params": 1e3, "latency_b1_ms": 1.0,
         "throughput_img_s": 900.0, "latency_under_load": None},
        {"label": "b", "family": "f", "model": "b", "macs": 2e6, "params": 2e3, "latency_b1_ms": 2.0,
         "throughput_img_s": 400.0, "latency_under_load": "1-minute load 3.00 before measuring"}])
    text = " ".join(profile_findings(group, "cpu"))
    assert "Fastest" not in text and "Highest inference throughput" not in text
    assert "No speed conclusion: 1 of 2 models" in text
    assert "Fastest at batch 1: a" in " ".join(profile_findings(group.assign(latency_under_load=None), "cpu"))
    assert "latency and throughput of b (e.g. b: 1-minute load 3.00" in speed_note(group)


def test_marked_cells_are_greyed_in_html_and_still_sort_as_numbers():
    frame = pd.DataFrame({"Model": ["a", "b"], "Latency": [speed(1.0, 2, None), speed(2.0, 2, "busy")]})
    assert list(frame.Latency) == ["1.00", f"2.00 {UNDER_LOAD_MARK}"]
    page = html_table(frame, "t", "caption")
    assert page.count('class="under-load"') == 1 and "<td>1.00</td>" in page


def test_speed_measured_again_on_another_machine_is_named_as_that_machine_s():
    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    record["env"].update(device="cpu", cpu_model="AMD EPYC", threads=1)
    record["latency"].update(device="cpu", device_name="AMD EPYC", threads=1)
    assert columns(record)["latency_hardware"] == columns(record)["hardware"] == "cpu: AMD EPYC, 1 thread"
    record["latency"].update(device_name="Intel Xeon", quiet={"checked": True}, other_machine="measured on ...")
    row = columns(record)
    assert row["hardware"] == "cpu: AMD EPYC, 1 thread" and row["latency_hardware"] == "cpu: Intel Xeon, 1 thread"

    base = {"family": "f", "macs": 1e6, "params": 1e3, "latency_under_load": None,
            "hardware": "cpu: AMD EPYC, 1 thread"}
    group = pd.DataFrame([
        {**base, "label": "a", "model": "a", "latency_b1_ms": 1.0, "throughput_img_s": 900.0,
         "latency_hardware": "cpu: Intel Xeon, 1 thread"},
        {**base, "label": "b", "model": "b", "latency_b1_ms": 2.0, "throughput_img_s": 400.0,
         "latency_hardware": "cpu: Intel Xeon, 1 thread"}])
    text = " ".join(profile_findings(group, "cpu: AMD EPYC, 1 thread"))
    assert "Fastest at batch 1: a (f), 1.00 ms median (on cpu: Intel Xeon, 1 thread, re-measured with " \
           "task=measure; the runs were made on cpu: AMD EPYC, 1 thread)" in text
    assert "measured again with task=measure on cpu: Intel Xeon, 1 thread, not on the machine that made " \
           "the runs (cpu: AMD EPYC, 1 thread)" in speed_note(group)
    # models timed on two machines are never compared
    mixed = group.assign(latency_hardware=["cpu: Intel Xeon, 1 thread", "cpu: AMD EPYC, 1 thread"])
    text = " ".join(profile_findings(mixed, "cpu: AMD EPYC, 1 thread"))
    assert "Fastest" not in text and "measured on different machines" in text
    assert speed_note(group.assign(latency_hardware="cpu: AMD EPYC, 1 thread")) is None


def _profile_comparison(remeasured):
    rows = []
    for model, seed in (("resnet20", 0), ("resnet56", 0)):
        record = fixture_record("profile", model, "resnet_v1", seed)
        record["task"], record["data"] = "profile", "imagenet"
        record["env"].update(device="cpu", cpu_model="AMD EPYC", threads=2)
        record["latency"].update(device="cpu", device_name="AMD EPYC", threads=2)
        if model in remeasured:
            record["latency"].update(device_name="Intel Xeon", quiet={"checked": True},
                                     other_machine="measured on another machine")
        rows.append(record_columns(record, f"runs/profile/imagenet/{model}/v/seed{seed}/record.json"))
    runs = pd.DataFrame(rows)
    hardware = runs.hardware.iloc[0]
    return Comparison("profile", "imagenet", hardware, runs, results.summarize(runs))


def test_profile_caption_names_the_machine_that_re_measured_the_speed():
    comparison = _profile_comparison({"resnet20", "resnet56"})
    assert comparison.hardware == "cpu: AMD EPYC, 2 threads"
    [(_, caption, note)] = tables(profile.blocks(section_context(), comparison))
    assert "complexity on cpu: AMD EPYC, 2 threads; speed re-measured on cpu: Intel Xeon, 2 threads" in caption
    assert "complexity and speed on cpu: AMD EPYC" not in caption
    assert "measured again with task=measure on cpu: Intel Xeon, 2 threads, not on the machine that made the " \
           "runs (cpu: AMD EPYC, 2 threads)" in note


def test_profile_caption_is_unchanged_when_speed_is_the_runs_own_and_says_when_only_some_were_re_timed():
    [(_, caption, note)] = tables(profile.blocks(section_context(), _profile_comparison(set())))
    assert "complexity and speed on cpu: AMD EPYC, 2 threads (profile only" in caption
    assert note is None or "task=measure" not in note
    [(_, caption, _)] = tables(profile.blocks(section_context(), _profile_comparison({"resnet20"})))
    assert ("complexity on cpu: AMD EPYC, 2 threads; speed re-measured on cpu: Intel Xeon, 2 threads for some "
            "models, the rest timed on cpu: AMD EPYC, 2 threads") in caption


def test_a_model_whose_seeds_were_timed_on_two_machines_names_both_and_is_not_compared():
    """Machine labels hold commas ('cpu: AMD EPYC, 1 thread'), so a summary joins them with '; ' and the
    readers split on that: each machine is named once, whole, and no speed comparison is drawn."""
    from archbench.results import summarize

    from helpers import FIXTURE_RECORD

    runs = []
    for seed, machine in enumerate(["Intel Xeon", "AMD EPYC"]):
        record = fixture_record("s", "resnet20", "resnet_v1", seed)
        record["env"].update(device="cpu", cpu_model="AMD EPYC", threads=1)
        record["latency"].update(device="cpu", device_name=machine, threads=1, quiet={"checked": True},
                                 other_machine="measured on ..." if machine != "AMD EPYC" else None)
        runs.append(record_columns(record, FIXTURE_RECORD.parent.parent / f"seed{seed}" / "record.json"))
    summary = summarize(pd.DataFrame(runs))
    assert list(summary.latency_hardware) == ["cpu: AMD EPYC, 1 thread; cpu: Intel Xeon, 1 thread"]
    other = summary.assign(model="b", label="b", latency_hardware="cpu: AMD EPYC, 1 thread")
    group = pd.concat([summary.assign(label="a"), other], ignore_index=True)
    text = " ".join(profile_findings(group, "cpu: AMD EPYC, 1 thread"))
    assert "Fastest" not in text
    assert "measured on different machines (cpu: AMD EPYC, 1 thread; cpu: Intel Xeon, 1 thread)" in text
    assert "measured again with task=measure on cpu: Intel Xeon, 1 thread, not on" in speed_note(group)


def test_a_model_timed_within_the_fastest_one_s_spread_is_not_called_slower():
    group = pd.DataFrame([
        {"label": "a", "family": "f", "model": "a", "latency_b1_ms": 2.08, "latency_b1_p90_ms": 2.15,
         "throughput_img_s": 900.0, "latency_under_load": None},
        {"label": "b", "family": "f", "model": "b", "latency_b1_ms": 2.10, "latency_b1_p90_ms": 2.2,
         "throughput_img_s": 880.0, "latency_under_load": None},
        {"label": "c", "family": "f", "model": "c", "latency_b1_ms": 3.40, "latency_b1_p90_ms": 3.5,
         "throughput_img_s": 480.0, "latency_under_load": None}])
    text = " ".join(profile_findings(group.assign(macs=1e6, params=1e3), "cpu"))
    assert "Fastest at batch 1: a (f), 2.08 ms median (on cpu); within its timing spread (p90 2.15 ms), " \
           "so not shown slower: b 2.10 ms." in text


def test_training_throughput_and_time_headings_name_the_training_machine():
    """Latency may be re-timed elsewhere; training throughput and time are always the training machine's,
    taken while it trained, and their headings say which machine that was."""
    from archbench.report.tables import metric_cells

    row = {"hardware": "cpu: AMD EPYC, 1 thread", "train_img_s": 512.0, "wall_s": 41.0, "latency_b1_ms": 2.0,
           "latency_under_load": None}
    cells = metric_cells(row, ["train_img_s", "wall_s", "latency_b1_ms"], "cpu: Intel Xeon, 1 thread")
    assert cells == {"Train (img/s, cpu: AMD EPYC, 1 thread, during training)": "512",
                     "Training time (s, cpu: AMD EPYC, 1 thread)": "41",
                     "Batch-1 latency (ms, cpu: Intel Xeon, 1 thread)": "2.00"}


def test_a_speed_timed_at_another_precision_than_training_says_so():
    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    record["latency"].update(precision="fp32", memory_format="NCHW")
    assert columns(record)["latency_precision"] == "fp32 NCHW"
    group = pd.DataFrame([{"label": "a", "hardware": "h", "latency_hardware": "h", "latency_under_load": None,
                           "latency_precision": "fp32 NCHW", "amp": "bf16"},
                          {"label": "b", "hardware": "h", "latency_hardware": "h", "latency_under_load": None,
                           "latency_precision": "fp32 NCHW", "amp": "off"}])
    assert "timed at fp32 NCHW (the measure settings), not at each model's training precision" in speed_note(group)
    assert speed_note(group.assign(amp="off")) is None  # every model trained in what was timed


def test_training_figures_taken_on_a_shared_gpu_are_labelled_so():
    record = fixture_record("s", "resnet20", "resnet_v1", 0)
    assert columns(record)["shared_device"] is None
    record["train"]["shared_device"] = "trained beside the sweep's other jobs on the same GPU"
    assert columns(record)["shared_device"].startswith("trained beside")
    group = pd.DataFrame([{"label": "a", "hardware": "h", "latency_hardware": "h", "latency_under_load": None,
                           "shared_device": "trained beside the sweep's other jobs"},
                          {"label": "b", "hardware": "h", "latency_hardware": "h", "latency_under_load": None,
                           "shared_device": None}])
    note = speed_note(group)
    assert "MFU and energy of a were taken while the sweep's parallel jobs shared one GPU" in note
    assert "timed one model at a time after training" in note
    assert speed_note(group.assign(shared_device=None)) is None
