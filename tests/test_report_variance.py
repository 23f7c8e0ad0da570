"""Sources of variance: seeds crossed with data-order seeds, pooled in the accuracy table and split
in their own report section. Records are written here from one hand-written fixture record, with
schema 2 identities whose variants differ only in data.order_seed, as the variance_sources study
(conf/experiment/variance_sources.yaml) writes them."""
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from archbench import results
from archbench.report import build_report
from archbench.report.reference import REFERENCE_COLUMNS

from helpers import fixture_record, write_record

FAMILIES = {"resnet20": "resnet_v1", "densenet40": "densenet"}
# Test top-1 per [seed][order seed]; the same grids as tests/test_stats.py, worked by hand there.
# resnet20: var_seed 6, var_order 3, var_resid 3 (shares 50 / 25 / 25 %, total std sqrt(12)).
# densenet40: var_seed 6, var_order clipped from -1 to 0, var_resid 3 (shares 67 / 0 / 33 %, total std 3).
CROSSED = {"resnet20": [[91, 89, 93], [89, 93, 94], [93, 97, 98]],
           "densenet40": [[93, 89, 91], [91, 93, 92], [95, 97, 96]]}
# An ordinary study: seeds only, the order seed follows the seed (null).
PLAIN = {"resnet20": [90.0, 91.0, 92.0], "densenet40": [92.0, 93.0, 94.0]}
NO_REFERENCE = pd.DataFrame(columns=REFERENCE_COLUMNS)


def _record(study, model, seed, order_seed, test_top1, lr=0.1) -> dict:
    record = fixture_record(study, model, FAMILIES[model], seed, test_top1=test_top1)
    settings = {"code": 1, "task": "train", "model": {"name": model},
                "data": {"name": "cifar10", "train_size": 2000, "order_seed": order_seed},
                "recipe": {"name": "he2015", "lr": lr, "budget": {"epochs": 3}}, "measure": None}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    record.update(schema=2, identity={"fingerprint": digest, "variant": f"he2015-3ep-{digest}",
                                      "settings": {**settings, "seed": seed}})
    return record


def _write(results_dir: Path, record: dict) -> None:
    write_record(results_dir, record, record["identity"]["variant"])


def write_studies(results_dir: Path) -> Path:
    for model, grid in CROSSED.items():
        for seed in range(3):
            for order_seed in range(3):
                _write(results_dir, _record("variance", model, seed, order_seed, grid[seed][order_seed]))
    for model, scores in PLAIN.items():
        for seed, score in enumerate(scores):
            _write(results_dir, _record("plain", model, seed, None, score))
    return results_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return results.load(write_studies(tmp_path_factory.mktemp("records")))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    results_dir = write_studies(tmp_path_factory.mktemp("records"))
    out = build_report(results_dir, tmp_path_factory.mktemp("built") / "report", reference=NO_REFERENCE)
    return out, (out / "README.md").read_text(encoding="utf-8")


def _section(readme: str, study: str) -> str:
    return readme.split(f"## Study: {study}\n")[1].split("\n## ")[0]


def test_order_seed_column_and_its_variants_as_loaded(runs):
    crossed = runs[runs.study == "variance"]
    assert sorted(crossed.order_seed.unique()) == [0, 1, 2]
    assert sorted(crossed.variant_label.unique()) == ["order_seed=0", "order_seed=1", "order_seed=2"]
    plain = runs[runs.study == "plain"]
    assert (plain.order_seed == plain.seed).all()  # null follows the seed


def test_variants_that_differ_only_in_order_seed_are_pooled_as_one_model(runs):
    pooled = results.pool_order_seeds(runs)
    crossed = pooled[pooled.study == "variance"]
    assert crossed.groupby("model").variant.nunique().eq(1).all()
    assert (crossed.variant_label == "").all() and crossed.pooled_order_seeds.all()
    assert crossed.variant_folder.nunique() == 6  # 2 models x 3 order seeds, still traceable
    summary = results.summarize(crossed).set_index("model")
    assert summary.loc["resnet20", "seeds"] == 9 and summary.loc["resnet20", "test_top1_mean"] == pytest.approx(93.0)
    assert not pooled[pooled.study == "plain"].pooled_order_seeds.any()
    assert results.pool_order_seeds(pooled).variant.equals(pooled.variant)  # idempotent


def test_variants_that_also_differ_in_anything_else_are_not_pooled(tmp_path):
    for order_seed, lr in ((0, 0.1), (1, 0.1), (0, 0.05)):
        _write(tmp_path, _record("sweep", "resnet20", 0, order_seed, 90.0 + order_seed, lr=lr))
    pooled = results.pool_order_seeds(results.load(tmp_path))
    assert not pooled.pooled_order_seeds.any() and pooled.variant.nunique() == 3
    assert sorted(pooled.variant_label) == ["order_seed=0, lr=0.05", "order_seed=0, lr=0.1",
                                            "order_seed=1, lr=0.1"]


def test_variance_sources_only_for_a_crossed_design(runs):
    variance = results.variance_sources(runs).set_index("model")
    assert set(variance.study) == {"variance"}  # the seeds-only study is not crossed
    resnet20 = variance.loc["resnet20"]
    assert resnet20.runs == 9 and resnet20.seeds == 3 and resnet20.order_seeds == 3 and resnet20.complete
    assert resnet20.total_std == pytest.approx(12 ** 0.5)
    assert (resnet20.seed_std, resnet20.order_std, resnet20.residual_std) == pytest.approx(
        (6 ** 0.5, 3 ** 0.5, 3 ** 0.5))
    assert (resnet20.seed_share, resnet20.order_share, resnet20.residual_share) == pytest.approx((0.5, 0.25, 0.25))
    densenet40 = variance.loc["densenet40"]
    assert densenet40.order_var_raw == pytest.approx(-1.0) and densenet40.order_share == 0.0
    assert densenet40.total_std == pytest.approx(3.0)


def test_an_incomplete_crossed_design_is_named_not_decomposed(runs):
    missing = (runs.model == "resnet20") & (runs.seed == 2) & (runs.order_seed == 1)
    variance = results.variance_sources(runs[~missing]).set_index("model")
    assert not variance.loc["resnet20", "complete"]
    assert variance.loc["resnet20", "missing"] == "seed 2 with order seed 1 missing"
    assert pd.isna(variance.loc["resnet20", "total_std"]) and variance.loc["densenet40", "complete"]


def test_the_report_has_a_sources_of_variance_section_for_the_crossed_study_only(report):
    out, readme = report
    crossed, plain = _section(readme, "variance"), _section(readme, "plain")
    assert "#### Sources of variance" in crossed and "Sources of variance" not in plain
    assert ("With 3 seeds and 3 order seeds, the initialisation part rests on 2 degrees of freedom, the "
            "order part on 2 and the residual on 4") in crossed
    assert "Highest mean test top-1: densenet40 (densenet), 93.00 ± 2.60% over 9 runs" in crossed
    assert ("For resnet20, data order contributes 25% of the variance of test top-1, initialisation 50%, "
            "and the residual (their interaction and noise) 25%; one run varies by a std of 3.46 points "
            "(1.73 from order, 2.45 from initialisation), over 9 runs.") in crossed
    assert ("For densenet40, data order contributes 0% of the variance of test top-1, initialisation 67%"
            in crossed)
    assert "The data order estimate fell below zero" in crossed
    assert ("| resnet20 | 9 (3 seeds × 3 order seeds) | 93.00 | 3.464 | 2.449 | 1.732 | 1.732 | 50 | 25 | 25 |"
            in crossed)
    stem = "variance--cifar10--cpu-fixture-cpu-not-a-real-machine-2-threads--variance"
    assert (out / "figures" / f"{stem}.png").is_file() and (out / "tables" / f"{stem}.csv").is_file()
    assert 'id="' + stem + '"' in (out / "index.html").read_text(encoding="utf-8")
    glance = readme.split("## At a glance")[1].split("## How to read")[0]
    assert "resnet20: order 25%, initialisation 50%, residual 25%" in glance


def test_the_accuracy_table_pools_the_order_seeds_and_says_so(report):
    _out, readme = report
    crossed = _section(readme, "variance")
    caption = next(line for line in crossed.splitlines() if line.startswith("*variance / CIFAR-10: summary"))
    assert ("densenet40, resnet20: runs that differ in nothing but data.order_seed are pooled as one row, "
            "so Seeds counts every (seed, order seed) run") in caption
    table = crossed.split(caption)[1].split("\n\n")[1]  # the caption, a blank line, the table
    rows = table.splitlines()[2:]
    assert len(rows) == 2 and all("| 9 |" in row for row in rows)
    assert "order_seed=" not in crossed
    assert "pooled" not in _section(readme, "plain")
