"""One comparison from many machines: accuracy pooled at one numerics identity, speed never pooled."""
import pandas as pd
import pytest

from archbench import results
from archbench.results.pooling import EQUIVALENCE_POINTS, machine_effect
from helpers import fixture_record, write_record

ZEN = "AMD EPYC 9B45"
XEON = "Intel Xeon Platinum 8481C"
NOISE = [0.3, -0.2, 0.1, -0.4, 0.2, 0.0]  # a seed's luck, the same on any machine


def machine_record(model, seed, cpu, top1, img_s, numerics="same"):
    record = fixture_record("pooled", model, "resnet_v1", seed, test_top1=top1)
    record["env"].update(cpu_model=cpu, threads=1, hostname=cpu)
    record["train"]["img_per_s"] = img_s
    if numerics is not None:
        record["numerics"] = {"fingerprint": f"{numerics}-{model}", "precision": "bf16", "channels_last": True,
                              "torch": "2.14", "code": 1}
    return record


def write_study(tmp_path, runs):
    """`runs`: (model, seed, cpu, top1, img_s[, numerics]) per record, each machine's in its own folder (a
    seed trained on two machines comes from two results folders: in one, its second run would resume)."""
    for model, seed, cpu, top1, img_s, *numerics in runs:
        write_record(tmp_path / cpu.split()[0], machine_record(model, seed, cpu, top1, img_s, *numerics),
                     "quick-25ep-shared")
    return results.load_with_exclusions(tmp_path)


def two_machine_study(shift=0.0, numerics_b="same"):
    """Three models; seeds 0-1 on the Zen machine, seeds 2-3 on the Xeon (shifted by `shift` points)."""
    base = {"resnet20": 60.0, "wrn_16_2": 65.0, "densenet_bc_40_12": 70.0}
    runs = []
    for i, (model, top1) in enumerate(base.items()):
        runs += [(model, seed, ZEN, top1 + NOISE[(seed + i) % 6], 500.0) for seed in (0, 1)]
        runs += [(model, seed, XEON, top1 + shift + NOISE[(seed + i) % 6], 900.0, numerics_b) for seed in (2, 3)]
    return runs


def test_one_numerics_identity_on_two_machines_is_one_comparison_with_one_machines_speed(tmp_path):
    runs, _ = write_study(tmp_path, two_machine_study())
    assert runs.hardware.nunique() == 1
    label = runs.hardware.iloc[0]
    assert ZEN in label and XEON in label
    summary = results.summarize(runs)
    assert list(summary.seeds) == [4, 4, 4]  # every seed of every machine counts for accuracy
    # speed never pools: the training throughput is the speed machine's alone (500, never the 700 average)
    assert list(summary.train_img_s) == [500.0, 500.0, 500.0]
    assert summary.speed_machine.str.contains(ZEN).all()
    check = runs.machine_check.iloc[0]
    assert "paired by model" in check and "pooled" in check and "not pooled" not in check


def test_a_machine_beyond_noise_is_not_pooled_and_says_why(tmp_path):
    runs, _ = write_study(tmp_path, two_machine_study(shift=5.0))
    assert runs.hardware.nunique() == 2  # each machine its own comparison again
    assert runs.machine_check.str.contains("differs beyond noise: not pooled").all()


def test_a_machine_that_trained_other_numerics_forms_its_own_group(tmp_path):
    runs, _ = write_study(tmp_path, two_machine_study(numerics_b="fp32"))
    assert runs.hardware.nunique() == 2
    assert runs.machine_check.isna().all()  # nothing was pooled, so nothing was checked


def test_records_without_a_numerics_identity_stay_one_comparison_per_machine(tmp_path):
    runs, _ = write_study(tmp_path, [(model, seed, cpu, top1, img_s, None)
                                     for model, seed, cpu, top1, img_s, *_ in two_machine_study()])
    assert runs.hardware.nunique() == 2 and runs.machine_check.isna().all()


def test_a_seed_trained_on_both_machines_counts_once_and_pairs_the_check(tmp_path):
    study = [(model, seed, cpu, 60.0 + 5 * i + NOISE[(seed + i) % 6] + (NOISE[seed + 3 * i] if cpu == XEON else 0),
              img_s)
             for i, model in enumerate(["resnet20", "wrn_16_2"]) for seed in (0, 1, 2)
             for cpu, img_s in ((ZEN, 500.0), (XEON, 900.0))]
    runs, excluded = write_study(tmp_path, study)
    summary = results.summarize(runs)
    assert list(summary.seeds) == [3, 3]
    assert (runs.trained_on.str.contains(ZEN)).all()  # the speed machine's run of each seed is kept
    twice = excluded[excluded.reason.str.contains("also trained on")]
    assert len(twice) == 6 and twice.reason.str.contains("machine-effect check").all()
    check = runs.machine_check.iloc[0]
    assert "6 seed pairs" in check and f"equivalent within ±{EQUIVALENCE_POINTS:g} point" in check


def test_machine_effect_estimates_the_shift_and_refuses_with_one_pair():
    frame = pd.DataFrame({"model": ["a", "a", "b", "b", "c", "c"], "variant": "v", "seed": [0, 1, 0, 1, 0, 1],
                          "trained_on": ["m1", "m2"] * 3, "test_top1": [60, 62.1, 70, 71.9, 80, 82.0]})
    effect = machine_effect(frame, "m1", "m2")
    assert effect.paired_by == "model" and effect.pairs == 3
    assert effect.effect == pytest.approx(2.0) and effect.differs and not effect.equivalent
    precise = machine_effect(frame.assign(test_top1=[60, 60.05, 70, 70.06, 80, 80.04]), "m1", "m2")
    assert precise.low > 0 and precise.equivalent and not precise.differs  # significant yet negligible
    lonely = machine_effect(frame[frame.model == "a"], "m1", "m2")
    assert lonely.effect is None and "not testable" in lonely.sentence()


def test_the_report_lists_the_machines_with_their_seeds_and_the_check(tmp_path):
    from archbench.report import build_report
    from test_claims import NO_REFERENCE

    write_study(tmp_path, two_machine_study())
    readme = (build_report(tmp_path, tmp_path / "report", reference=NO_REFERENCE) / "README.md").read_text()
    assert "Trained on 2 machines, accuracy pooled at one numerics identity" in readme
    assert "(seeds 0, 1; commits f1x7ure)" in readme and "(seeds 2, 3; commits f1x7ure)" in readme
    assert "Machine check: machine effect on test top-1" in readme
