"""The budget ladder (archbench.results.ladder): rankings per rung, tau against the largest rung, swaps beyond noise,
accuracy against budget, time to a target, on constructed records whose answers are known."""
import math

import pytest
from helpers import fixture_record, write_record

from archbench.results import ladder as ladders
from archbench import results
from archbench.base.files import atomic_write_json
from archbench.record import read_record

MODELS = {"resnet20": "resnet_v1", "wrn_16_2": "wide_resnet", "densenet_bc_40_12": "densenet",
          "shufflenet_v2_x2_0": "shufflenet_v2", "fractalnet_20_w4": "fractalnet"}
SPREAD = [-0.3, 0.0, 0.3]  # seed offsets: a small, known seed spread


def _write(tmp_path, study, steps, model, seed, test_top1, cpu="Fixture CPU (not a real machine)"):
    record = fixture_record(study, model, MODELS[model], seed, test_top1=test_top1, val_top1=test_top1 + 1)
    record["config"]["train"]["budget"] = {"steps": steps}
    record["train"].update(steps=steps, wall_s=steps * 0.5)
    record["env"]["cpu_model"] = cpu
    write_record(tmp_path, record, f"v{steps}")


def _study(tmp_path, study, steps, means, seeds=3, cpu="Fixture CPU (not a real machine)"):
    for model, mean in means.items():
        for seed in range(seeds):
            _write(tmp_path, study, steps, model, seed, mean + SPREAD[seed], cpu)


SHORT = {"resnet20": 40.0, "wrn_16_2": 30.0, "densenet_bc_40_12": 20.0, "shufflenet_v2_x2_0": 10.0}


def test_a_ranking_that_holds_across_rungs(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT)
    _study(tmp_path, "base", 176, {m: v + 10 for m, v in SHORT.items()})
    _study(tmp_path, "ladder", 704, {m: v + 20 for m, v in SHORT.items()}, seeds=2)
    found = ladders.budget_ladder(results.load(tmp_path), "ladder", "base")
    assert found.rungs == [44, 176, 704] and found.base_steps == 176
    assert found.shifts[176]["tau"] == pytest.approx(1.0) and found.shifts[176]["verdict"] == "holds"
    assert found.shifts[44]["swapped"] == [] and found.beyond_noise[44] == []
    text = ladders.verdict(found)
    assert text.startswith("Does the ranking after 176 steps") and "Yes:" in text and "No pair changes order" in text
    # Each rung's ranks carry intervals; the best model is first at every rung.
    firsts = found.ranks[found.ranks["rank"] == 1]
    assert set(firsts.label) == {"resnet20"} and set(firsts.steps) == {44, 176, 704}
    assert {"rank_low", "rank_high", "share_first"} <= set(found.ranks.columns)
    # Accuracy against budget: one row per model and rung, MACs consumed grow with steps.
    curve = found.curve[found.curve.model == "resnet20"]
    assert list(curve.steps) == [44, 176, 704] and list(curve.seeds) == [3, 3, 2]
    assert curve["mean"].tolist() == pytest.approx([40.0, 50.0, 59.85])
    assert curve.macs_consumed.is_monotonic_increasing and (curve.low < curve["mean"]).all()
    assert curve.epochs.iloc[0] == pytest.approx(44 * 128 / 45000)
    # The target is the weakest model's validation top-1 at the largest rung, rounded down.
    assert found.target["target"] == math.floor(10 + 20 - 0.15 + 1)
    reached = found.target["reached"].set_index("model")
    assert reached.loc["shufflenet_v2_x2_0", "steps"] == 704 and reached.loc["resnet20", "steps"] == 44


def test_a_swap_separated_at_both_rungs_is_beyond_noise_and_one_within_noise_is_not(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT)
    # At the largest rung wrn_16_2 passes resnet20 by 10 points (separated), and shufflenet edges past
    # densenet by 0.2 (not separated): two swaps, one beyond noise.
    long = {"resnet20": 60.0, "wrn_16_2": 70.0, "densenet_bc_40_12": 40.0, "shufflenet_v2_x2_0": 40.2}
    _study(tmp_path, "ladder", 704, long)
    found = ladders.budget_ladder(results.load(tmp_path), "ladder")
    shift = found.shifts[44]
    assert {(s["ahead_before"], s["ahead_after"]) for s in shift["swapped"]} == \
        {("resnet20", "wrn_16_2"), ("densenet_bc_40_12", "shufflenet_v2_x2_0")}
    assert [(s["ahead_before"], s["ahead_after"]) for s in found.beyond_noise[44]] == [("resnet20", "wrn_16_2")]
    assert "1 of 2 swapped pairs change order beyond noise" in ladders.verdict(found)


def test_a_rung_never_pools_two_machines(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT)
    _study(tmp_path, "ladder", 704, {m: v + 20 for m, v in SHORT.items()})
    _write(tmp_path, "ladder", 704, "resnet20", 7, 99.0, cpu="Other CPU")
    found = ladders.budget_ladder(results.load(tmp_path), "ladder")
    assert found.curve[(found.curve.model == "resnet20") & (found.curve.steps == 704)]["seeds"].item() == 3
    assert found.left_out == ["1 runs at 704 steps on cpu: Other CPU, 2 threads (the rung keeps "
                              "cpu: Fixture CPU (not a real machine), 2 threads)"]


def test_base_studies_with_other_models_are_rungs_and_tau_reads_the_common_models(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT)
    _study(tmp_path, "base", 176, {m: v + 10 for m, v in SHORT.items()})
    # A longer base trains three of the four models and one the ladder lacks (as seed_claim does), and
    # reverses resnet20 and wrn_16_2 by 10 points, beyond noise.
    longer = {"resnet20": 60.0, "wrn_16_2": 70.0, "densenet_bc_40_12": 50.0, "fractalnet_20_w4": 45.0}
    _study(tmp_path, "claim", 8775, longer)
    found = ladders.budget_ladder(results.load(tmp_path), "ladder", ["base", "claim"])
    assert found.rungs == [44, 176, 8775] and found.base_rungs == {176: "base", 8775: "claim"}
    assert found.base_steps == 176  # the first base is the budget the verdict asks about
    assert found.models_in_some_rungs() == {"fractalnet_20_w4": [8775], "shufflenet_v2_x2_0": [44, 176]}
    shift = found.shifts[176]
    assert shift["models"] == 3  # resnet20, wrn_16_2, densenet_bc_40_12: the ones both rungs trained
    assert shift["tau"] == pytest.approx(1 / 3)
    assert [(s["ahead_before"], s["ahead_after"]) for s in found.beyond_noise[176]] == [("resnet20", "wrn_16_2")]
    assert ladders.verdict(found).startswith("Does the ranking after 176 steps")
    assert "3 models" in ladders.verdict(found)
    # The target is read at the top rung, whose weakest model is fractalnet.
    assert found.target["target"] == 46  # its mean validation top-1, 45 + 1


def test_one_rung_is_no_ladder(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT, seeds=2)
    assert ladders.budget_ladder(results.load(tmp_path), "ladder") is None


def test_the_shipped_ladder_study_declares_its_base_and_budgets():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from archbench.results.ladder import ladder_studies

    assert ladder_studies()["cifar_cpu_ladder"] == ["cifar_cpu", "seed_claim"]
    conf = str(ladders.Path(ladders.__file__).resolve().parents[2] / "conf")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf, version_base=None):
        ladder = compose("config", overrides=["experiment=cifar_cpu_ladder"], return_hydra_config=True)
        base = compose("config", overrides=["experiment=cifar_cpu"], return_hydra_config=True)
        claim = compose("config", overrides=["experiment=seed_claim"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    # The top rung, seed_claim: the same data and recipe; its validation every quarter epoch learns nothing.
    assert claim.data == base.data
    assert {k: v for k, v in claim.train.items() if k not in ("budget", "val_per_epoch")} == \
        {k: v for k, v in base.train.items() if k not in ("budget", "val_per_epoch")}
    # Same data, recipe and models as its base; only the budget (and so the study name) differ.
    assert ladder.data == base.data
    assert {k: v for k, v in ladder.train.items() if k != "budget"} == \
        {k: v for k, v in base.train.items() if k != "budget"}
    params = ladder.hydra.sweeper.params
    assert params["model"] == base.hydra.sweeper.params["model"]
    assert sorted(int(s) for s in str(params["train.budget.steps"]).split(",")) == [44, 704]
    assert len(str(params.seed).split(",")) >= 3


@pytest.mark.slow
def test_the_report_shows_the_ladder_after_its_base_with_its_verdict_at_a_glance(tmp_path, monkeypatch):
    from test_report_tuning import NO_REFERENCE

    from archbench.report import figures as plots
    from archbench.report.build import build_report

    _study(tmp_path, "ladder", 44, SHORT)
    _study(tmp_path, "base", 176, {m: v + 10 for m, v in SHORT.items()})
    _study(tmp_path, "ladder", 704, {m: v + 20 for m, v in SHORT.items()}, seeds=2)
    overlaps, original = {}, plots.save

    def checking(figure, figures_dir, stem):
        plots.place_point_labels(figure)
        overlaps[stem] = plots.overlapping_texts(figure)
        return original(figure, figures_dir, stem)

    # A second base trains three of the four models and one more, as seed_claim does for cifar_cpu_ladder.
    _study(tmp_path, "claim", 8775, {"resnet20": 70.0, "wrn_16_2": 60.0, "densenet_bc_40_12": 50.0,
                                     "fractalnet_20_w4": 45.0})
    monkeypatch.setattr(plots, "save", checking)
    out = build_report(tmp_path, tmp_path / "report", reference=NO_REFERENCE, headline=[],
                       ladders={"ladder": ["base", "claim"]})
    readme = (out / "README.md").read_text(encoding="utf-8")
    glance = readme[readme.index("## At a glance"):readme.index("## How to read")]
    assert "Does the ranking after 176 steps" in glance and "after 8775 steps" in glance
    # The ladder's section follows its first base study's, and replaces the per-budget comparison tables.
    base, section = readme.index("## Study: base"), readme.index("## Study: ladder (budget ladder)")
    assert base < section and "## Study: ladder\n" not in readme
    ladder_text = readme[section:]
    assert "the 176-step rung is base's runs; the 8775-step rung is claim's runs" in ladder_text
    assert "(the models differ: below)" in ladder_text
    assert "Models trained at some rungs only: fractalnet_20_w4 (8775 steps); shufflenet_v2_x2_0 (44, 176, 704 " \
           "steps)" in ladder_text
    assert "44 → 8775 steps: tau 1.00" in ladder_text and "704 → 8775 steps: tau 1.00" in ladder_text
    assert (out / "figures" / "ladder--ladder--accuracy.png").exists()
    assert (out / "tables" / "ladder--ladder--ranks.csv").exists()
    assert overlaps["ladder--ladder--accuracy"] == []


def test_a_precision_that_differs_between_rungs_is_named(tmp_path):
    _study(tmp_path, "ladder", 44, SHORT, seeds=2)
    _study(tmp_path, "ladder", 704, SHORT, seeds=2)
    for path in (tmp_path / "runs" / "ladder" / "cifar10" / "resnet20" / "v704").rglob("record.json"):
        record = read_record(path)
        record["train"].update(amp="bf16", channels_last=True)
        atomic_write_json(path, record)
    found = ladders.budget_ladder(results.load(tmp_path), "ladder")
    changes = ladders.precision_changes(found)
    assert list(changes) == ["resnet20"] and changes["resnet20"][704] == "bf16 NHWC"
    assert changes["resnet20"][44] != "bf16 NHWC"
