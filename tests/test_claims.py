"""The ranking claim as data (archbench.claims), its study (seed_claim) and its report section."""
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from archbench.__main__ import CONF_DIR
from archbench.claims import CIFAR_RANKING, CLAIMS, Claim, ClaimedFamily
from archbench.models import SMALL_REPRESENTATIVES, list_models, model_family
from archbench.report import build_report
from archbench.report.reference import REFERENCE_COLUMNS

from helpers import archbench, fixture_record, load, record_path, write_record
from test_config import values

NO_REFERENCE = pd.DataFrame(columns=REFERENCE_COLUMNS)


def test_every_claimed_model_is_registered_in_its_family():
    for claim in CLAIMS:
        for entry in claim.order:
            for scale, model in entry.models.items():
                assert model in list_models(), (claim.name, scale, model)
                assert model_family(model) == entry.family, (entry.label, model)


def test_small_scale_uses_the_families_small_representatives():
    small = CIFAR_RANKING.label_of("small")
    # DenseNet-BC is the densenet family's representative; plain DenseNet stands beside it.
    expected = {model for family, model in SMALL_REPRESENTATIVES.items()
                if family in {entry.family for entry in CIFAR_RANKING.order}} | {"densenet_40_12"}
    assert set(small) == expected
    assert small["densenet_bc_40_12"] == "DenseNet-BC" and small["densenet_40_12"] == "DenseNet"
    assert CIFAR_RANKING.statement == " > ".join(entry.label for entry in CIFAR_RANKING.order)


def test_scale_in_needs_every_model_of_a_scale():
    small = CIFAR_RANKING.models("small")
    assert CIFAR_RANKING.scale_in(small + ["shufflenet_v2_x2_0"]) == "small"
    assert CIFAR_RANKING.scale_in(small[:-1]) is None
    assert CIFAR_RANKING.scale_in(CIFAR_RANKING.models("paper")) == "paper"


def test_a_malformed_claim_is_refused():
    a = ClaimedFamily("A", "resnet_v1", {"small": "resnet20"})
    with pytest.raises(ValueError, match="two or more distinct"):
        Claim("x", "A", "nowhere", (a, a))
    with pytest.raises(ValueError, match="same scales"):
        Claim("x", "A > B", "nowhere", (a, ClaimedFamily("B", "resnet_v2", {"paper": "preact_resnet20"})))
    with pytest.raises(ValueError, match="one model stands for two families"):
        Claim("x", "A > B", "nowhere", (a, ClaimedFamily("B", "resnet_v1", {"small": "resnet20"})))


def test_seed_claim_study_is_exactly_the_claim_models():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=seed_claim"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    models = values(params["model"])
    assert CIFAR_RANKING.scale_in(models) == "small"
    assert sorted(models) == sorted(CIFAR_RANKING.models("small"))  # the non-claim models were dropped for cost
    assert [int(seed) for seed in values(params["seed"])] == [0, 1, 2]
    assert cfg.data.name == "cifar10_jpg" and cfg.study == "seed_claim"


# Measured test top-1 per seed, set so each verdict occurs: claim order is
# DenseNet-BC > ResNeXt > DenseNet > WRN > FractalNet > ResNetV2 > ResNet.
MEASURED = {
    "densenet_bc_40_12": [90.0, 90.1, 90.2],   # > resnext by 5 points: confirmed
    "resnext29_8x64d_w8": [85.0, 85.1, 85.2],  # > densenet by 5: confirmed
    "densenet_40_12": [80.0, 79.0, 81.0],      # ~ wrn: not separated
    "wrn_16_2": [80.5, 79.5, 80.3],            # > fractalnet: confirmed
    "fractalnet_20_w4": [70.0, 70.1, 70.2],    # < preact by 5: reversed beyond noise
    "preact_resnet20": [75.0, 75.1, 75.2],     # > resnet: confirmed
    "resnet20": [60.0, 60.1, 60.2],
    "shufflenet_v2_x2_0": [50.0, 50.1, 50.2],  # not in the claim
}


def write_measured(results_dir):
    """MEASURED as seed_claim records, one setting ("shared") for every model."""
    for model, tops in MEASURED.items():
        for seed, top1 in enumerate(tops):
            write_record(results_dir, fixture_record("seed_claim", model, model_family(model), seed,
                                                     test_top1=top1, val_top1=top1), "shared")


def test_claim_section_reads_a_study_with_one_model_per_family(tmp_path):
    results_dir = tmp_path / "records"
    write_measured(results_dir)
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE, headline=["seed_claim"])
    readme = (out / "README.md").read_text(encoding="utf-8")
    # The headline names the claim's verdict, and the claim's section comes before the studies' sections.
    glance = readme[readme.index("## At a glance"):readme.index("## How to read")]
    assert f"The claim {CIFAR_RANKING.statement}: Kendall tau 0.81, 95% interval [" in glance
    assert "adjacent pairs: 4 confirmed, 1 reversed beyond noise, 1 not separated" in glance
    assert readme.index("## Claim:") < readme.index("## Study: seed_claim")
    claim = readme.split(f"## Claim: {CIFAR_RANKING.statement}")[1].split("\n## ")[0]
    assert "Measured (mean test top-1 over 3 seeds): DenseNet-BC (densenet_bc_40_12) > ResNeXt " in claim
    assert "ResNetV2 (preact_resnet20) > FractalNet (fractalnet_20_w4) > ResNet (resnet20)" in claim
    assert "4 confirmed, 1 reversed beyond noise, 1 not separated" in claim
    assert "shufflenet" not in claim.split("Adjacent pairs")[0].split("Measured")[1]
    pairs = pd.read_csv(next((out / "tables").glob("*--claim-cifar_ranking-pairs.csv")))
    verdicts = dict(zip(pairs.Claimed, pairs.Verdict))
    assert verdicts["fractalnet_20_w4 > preact_resnet20"] == "reversed beyond noise"
    assert verdicts["densenet_40_12 > wrn_16_2"] == "not separated"
    assert verdicts["densenet_bc_40_12 > resnext29_8x64d_w8"] == "confirmed"
    measured = pd.read_csv(next((out / "tables").glob("*--claim-cifar_ranking.csv")))
    assert list(measured.model) == ["densenet_bc_40_12", "resnext29_8x64d_w8", "wrn_16_2", "densenet_40_12",
                                    "preact_resnet20", "fractalnet_20_w4", "resnet20"]
    # One swap of adjacent pairs plus the tie's order: tau = 1 - 2 x 2 / 21.
    assert "Kendall tau between the claimed and the measured order: 0.81" in claim


def test_claim_section_is_absent_without_a_family_of_the_claim(tmp_path):
    results_dir = tmp_path / "records"
    for model, tops in MEASURED.items():
        if model != "resnet20":
            for seed, top1 in enumerate(tops):
                write_record(results_dir, fixture_record("seed_claim", model, model_family(model), seed,
                                                         test_top1=top1, val_top1=top1), "shared")
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    assert "## Claim:" not in (out / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_claim_section_renders_on_a_tiny_run_of_seed_claim(tmp_path):
    """The real study, every model trained for one step on tiny synthetic data with two seeds, then the report."""
    out = archbench(["-m", "experiment=seed_claim", "data=synthetic", "data.synthetic_size=120", "seed=0,1",
                     "train.batch_size=8", "train.eval_batch_size=64", "train.budget.epochs=null",
                     "train.budget.steps=1", "train.amp=off", "train.channels_last=false",
                     "evaluate.after_train=false", "measure.warmup=0", "measure.min_reps=1",
                     "measure.min_time_s=0.01", "measure.batch_size=2", "measure.quiet.timeout_s=0"],
                    tmp_path, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = build_report(tmp_path, tmp_path / "report", include_synthetic=True, reference=NO_REFERENCE)
    readme = (report / "README.md").read_text(encoding="utf-8")
    assert f"## Claim: {CIFAR_RANKING.statement}" in readme
    assert "Adjacent pairs of the claim:" in readme
    assert len(list(Path(report, "tables").glob("seed-claim--*--claim-cifar_ranking*.csv"))) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).parents[1] / "../shared/data/cifar10-jpg.tar.gz").exists(),
                    reason="the CIFAR-10 JPEG archive (../shared/data/cifar10-jpg.tar.gz) is not in this checkout")
def test_new_small_representatives_train_three_steps_on_cifar10_jpg(tmp_path):
    models = ["resnext29_8x64d_w8", "fractalnet_20_w4"]
    out = archbench(["-m", f"model={','.join(models)}", "data=cifar10_jpg", "data.val_size=500", "seed=0",
                     "train.budget.epochs=null", "train.budget.steps=3", "train.batch_size=32",
                     "train.eval_batch_size=256", "train.amp=off", "train.channels_last=false",
                     "evaluate.after_train=false", "measure.warmup=0", "measure.min_reps=1",
                     "measure.min_time_s=0.01", "measure.batch_size=2", "measure.quiet.timeout_s=0"],
                    tmp_path, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for model in models:
        record = load(record_path(tmp_path, model, data="cifar10_jpg"))
        assert record["status"] == "complete", record.get("error")
        assert record["train"]["steps"] == 3 and record["dataset"]["test_size"] == 10_000


def test_claim_is_not_tested_where_a_model_ran_under_two_settings(tmp_path):
    results_dir = tmp_path / "records"
    write_measured(results_dir)
    for seed in range(2):  # resnet20 again under another setting: which run set stands for ResNet?
        record = fixture_record("seed_claim", "resnet20", "resnet_v1", seed, test_top1=61.0 + seed, val_top1=61.0)
        record["config"]["train"]["optimizer"]["lr"] = 0.05
        write_record(results_dir, record, "lr0.05")
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    claim = (out / "README.md").read_text(encoding="utf-8").split("## Claim:")[1].split("\n## ")[0]
    assert "Not tested: resnet20 ran under more than one setting here" in claim
    assert "Kendall tau" not in claim
