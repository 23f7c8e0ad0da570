"""Labels a reader relies on: where speed was timed, which corruption benchmark a result is not comparable
with and on how many images, and what the report promises about published numbers."""
import copy
import types

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from helpers import fixture_record, write_record
from archbench import results
from archbench.evaluate.corruptions import describe_generated
from archbench.record import record_columns
from archbench.report import figures as plots
from archbench.report.context import Analysis, Comparison
from archbench.report.document import BulletList
from archbench.report.sections import evaluation, how_to_read, profile

OLD_METHOD = ("generated with imagecorruptions-imaug 1.1.5: ImageNet-C parameters applied at 28x28; comparable "
              "between models here, NOT with published CIFAR-10-C results")


def _context(analysis=None):
    """What the sections call on a report: tables come back as (caption, note), no files or figures."""
    def table(name, caption, display, raw=None, note=None, collapsed=False):
        return ("table", caption, note)

    def figures(made, stem):
        for figure, _kind, _caption in made:
            if figure is not None:
                plt.close(figure)
        return []

    return types.SimpleNamespace(table=table, figures=figures,
                                 colors=plots.family_colors(["resnet_v1"]), analysis=analysis,
                                 include_synthetic=False, reference_note=None)


def _tables(blocks):
    return [block for block in blocks if isinstance(block, tuple) and block[0] == "table"]


# ------------------------------------------------------------------------ 1. profile caption names both machines

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
    [(_, caption, note)] = _tables(profile.blocks(_context(), comparison))
    assert "complexity on cpu: AMD EPYC, 2 threads; speed re-measured on cpu: Intel Xeon, 2 threads" in caption
    assert "complexity and speed on cpu: AMD EPYC" not in caption
    assert "measured again with task=measure on cpu: Intel Xeon, 2 threads, not on the machine that made the " \
           "runs (cpu: AMD EPYC, 2 threads)" in note


def test_profile_caption_is_unchanged_when_speed_is_the_runs_own_and_says_when_only_some_were_re_timed():
    [(_, caption, note)] = _tables(profile.blocks(_context(), _profile_comparison(set())))
    assert "complexity and speed on cpu: AMD EPYC, 2 threads (profile only" in caption
    assert note is None or "task=measure" not in note
    [(_, caption, _)] = _tables(profile.blocks(_context(), _profile_comparison({"resnet20"})))
    assert ("complexity on cpu: AMD EPYC, 2 threads; speed re-measured on cpu: Intel Xeon, 2 threads for some "
            "models, the rest timed on cpu: AMD EPYC, 2 threads") in caption


# ------------------------------------------------------ 2. corruption benchmark of the dataset, images scored

@pytest.mark.parametrize("data, label, named", [
    ("cifar10", None, "NOT with published CIFAR-10-C results"),
    ("cifar10_jpg", "CIFAR-10 (JPEG image folder)", "NOT with published CIFAR-10-C results"),
    ("cifar100", None, "NOT with published CIFAR-100-C results"),
    ("fashion_mnist", "Fashion-MNIST", "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)"),
    ("svhn", "SVHN", "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)"),
])
def test_the_corruption_method_names_the_benchmark_of_the_dataset(data, label, named):
    for method in (OLD_METHOD, describe_generated(28)):
        text = evaluation.dataset_method(method, data, label)
        assert text.endswith(named) and text.startswith("generated with imagecorruptions-imaug")
    official = "official .npy files from /data/CIFAR-10-C"
    assert evaluation.dataset_method(official, data, label) == official


def _evaluated_comparison(tmp_path, data, images=1000):
    for model, family in (("resnet20", "resnet_v1"), ("resnet56", "resnet_v1")):
        for seed in range(2):
            record = fixture_record("robust", model, family, seed, test_top1=80.0 + seed)
            record["data"] = data
            record["config"]["data"]["name"] = data
            record["dataset"].update(name=data, test_size=10000)
            record["robustness"] = {
                "source": "generated", "method": OLD_METHOD, "images": images, "subset_seed": 0,
                "corruptions": ["contrast"], "severities": [1], "clean_top1": 80.0 + seed,
                "top1": {"contrast": {"1": 60.0 + seed + (model == "resnet56")}},
                "mean_corruption_top1": 60.0 + seed + (model == "resnet56"), "relative_drop": 25.0}
            write_record(tmp_path, copy.deepcopy(record), "v")
    analysis = Analysis(results.load(tmp_path))
    [comparison] = analysis.comparisons("robust")
    assert comparison.data == data
    return analysis, comparison


def _notes(blocks):
    return " ".join(item for block in blocks if isinstance(block, BulletList) for item in block.items)


def test_a_fashion_mnist_corruption_section_does_not_name_cifar_10_c_and_says_how_many_images(tmp_path):
    analysis, comparison = _evaluated_comparison(tmp_path, "fashion_mnist")
    notes = _notes(evaluation.blocks(_context(analysis), comparison))
    assert "CIFAR-10-C results" not in notes
    assert "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)." in notes
    assert "scored on 1,000 of the 10,000 test images: a fixed subset" in notes


def test_a_cifar_10_corruption_section_keeps_cifar_10_c_and_a_full_test_set_is_called_all(tmp_path):
    analysis, comparison = _evaluated_comparison(tmp_path, "cifar10", images=10000)
    notes = _notes(evaluation.blocks(_context(analysis), comparison))
    assert "NOT with published CIFAR-10-C results." in notes
    assert "scored on all 10,000 test images." in notes and "subset" not in notes


# ------------------------------------------------------------- 3. the promise about published numbers

def test_how_to_read_promises_only_what_the_report_does_about_published_numbers():
    [_, items, *_] = how_to_read.section(_context())
    [line] = [item for item in items.items if item.startswith("Published numbers")]
    # The reasons are listed only for models with a published number on the study's dataset.
    assert "otherwise the report says why" not in line
    assert "the study lists why its published numbers are left out; other studies show none" in line


def test_a_model_at_chance_is_named_in_the_glance_and_left_out_of_efficiency_claims(tmp_path):
    """Issue 43 item 7: a tiny study must not praise noise; a tau over two models is not shown."""
    from archbench.report import build_report
    from archbench.report.findings import ranking_verdict
    from helpers import fixture_record, write_record

    scores = {"resnet20": (40.0, 42.0), "wrn_16_2": (35.0, 36.0), "shufflenet_v2_x2_0": (10.0, 10.2)}
    families = {"resnet20": "resnet_v1", "wrn_16_2": "wide_resnet", "shufflenet_v2_x2_0": "shufflenet_v2"}
    for model, tops in scores.items():
        for seed, top1 in enumerate(tops):
            record = fixture_record("tiny", model, families[model], seed, test_top1=top1)
            if model == "shufflenet_v2_x2_0":
                record["flags"] = ["near_chance"]
                record["complexity"]["macs"] = 1e6  # the cheapest by far: it would top accuracy per MAC
            write_record(tmp_path / "results", record, "quick-2ep-00000000")
    out = build_report(tmp_path / "results", tmp_path / "report", reference=None)
    text = (out / "README.md").read_text()
    assert "At chance by its own validation check (nothing measurable learned in those runs): " \
           "shufflenet_v2_x2_0 (2 of 2 runs)" in text
    efficiency = [line for line in text.splitlines() if "accuracy per MAC" in line or "Pareto-optimal" in line]
    assert efficiency and not any("shufflenet" in line for line in efficiency), efficiency
    shift = {"models": 2, "swapped": [], "tau": 1.0, "tau_low": -1.0, "tau_high": 1.0, "verdict": None}
    assert "too few to rank" in ranking_verdict(shift, "clean", "corrupted")
