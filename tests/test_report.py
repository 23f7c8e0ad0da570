"""Golden tests of the report on hand-written fixture records (tests/fixtures/records)."""
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from archbench.report import build as report_build
from archbench.report import build_report
from archbench.report.__main__ import UsageError, main, parse_arguments
from archbench import results
from archbench.report.tables import accuracy_table, latex_escape

FIXTURES = Path(__file__).parent / "fixtures" / "records"
TRAIN_FIGURES = ["acc-vs-macs", "acc-vs-latency", "acc-vs-throughput", "params-vs-acc",
                 "val-vs-epoch", "val-vs-time", "family-bars"]
PROFILE_FIGURES = ["latency-vs-macs", "throughput-vs-macs"]
CPU_STEM = "cpu-fixture-cpu-not-a-real-machine-2-threads"
GPU_STEM = "cuda-fixture-gpu-not-a-real-machine"
# Test input standing in for archbench/models/reference.csv.
REFERENCE = pd.DataFrame([
    {"model": "resnet20", "family": "resnet_v1", "paper": "He et al. 2015",
     "source": "Table 6", "params_m": 0.27, "gmacs": 0.041, "input_size": 32,
     "dataset": "CIFAR-10", "top1_err": 8.75, "notes": ""},
    {"model": "resnet56", "family": "resnet_v1", "paper": "He et al. 2015",
     "source": "Table 6", "params_m": 0.85, "gmacs": 0.125, "input_size": 32,
     "dataset": "CIFAR-10", "top1_err": 6.97, "notes": ""},
    {"model": "densenet40", "family": "densenet", "paper": "Huang et al. 2017",
     "source": "Table 2", "params_m": 1.0, "gmacs": 0.29, "input_size": 32,
     "dataset": "CIFAR-10+", "top1_err": 7.00, "notes": ""},
])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "report"
    return build_report(FIXTURES, out, reference=REFERENCE)


@pytest.fixture(scope="module")
def readme(report):
    return (report / "README.md").read_text(encoding="utf-8")


class _HtmlInventory(HTMLParser):
    def __init__(self):
        super().__init__()
        self.table_ids, self.image_sources, self.links = [], [], []

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if tag == "table":
            self.table_ids.append(attributes.get("id"))
        elif tag == "img":
            self.image_sources.append(attributes.get("src", ""))
        elif tag in ("a", "link", "script"):
            self.links.append(attributes.get("href") or attributes.get("src"))


def expected_figure_stems():
    stems = [f"golden--cifar10--{hardware}--{kind}"
             for hardware in (CPU_STEM, GPU_STEM) for kind in TRAIN_FIGURES]
    return stems + [f"latency--imagenet--{CPU_STEM}--{kind}" for kind in PROFILE_FIGURES]


def test_every_figure_is_a_valid_non_empty_png_and_svg(report):
    figures = report / "figures"
    for stem in expected_figure_stems():
        png, svg = figures / f"{stem}.png", figures / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png.name
        height, width = matplotlib.image.imread(png).shape[:2]
        assert height > 100 and width > 100, png.name
        root = ElementTree.parse(svg).getroot()
        assert root.tag.endswith("svg") and len(root) > 0, svg.name
    assert len(list(figures.glob("*.png"))) == len(expected_figure_stems())


def test_html_is_self_contained_and_holds_every_table(report):
    inventory = _HtmlInventory()
    inventory.feed((report / "index.html").read_text(encoding="utf-8"))
    table_files = {path.stem for path in (report / "tables").glob("*.csv")}
    assert table_files and table_files == set(inventory.table_ids)
    assert len(inventory.image_sources) == len(expected_figure_stems())
    assert all(source.startswith("data:image/png;base64,") for source in inventory.image_sources)
    assert not [link for link in inventory.links if link and not link.startswith("#")]


def test_each_summary_is_written_as_csv_markdown_and_booktabs_latex(report):
    tables = report / "tables"
    for stem in (f"golden--cifar10--{CPU_STEM}--summary", f"golden--cifar10--{GPU_STEM}--summary",
                 f"latency--imagenet--{CPU_STEM}--summary"):
        assert {path.suffix for path in tables.glob(f"{stem}.*")} == {".csv", ".md", ".tex"}
        latex = (tables / f"{stem}.tex").read_text()
        assert latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index(r"\bottomrule")
    summary = pd.read_csv(tables / f"golden--cifar10--{CPU_STEM}--summary.csv").set_index("model")
    assert summary.loc["resnet20", "test_top1_mean"] == pytest.approx(91.5)
    assert summary.loc["resnet56", "test_top1_std"] == pytest.approx(0.5)
    assert summary.loc["densenet40", "test_top1_n"] == 2
    assert summary.pareto_macs.to_dict() == {"densenet40": False, "resnet20": True,
                                             "resnet56": True, "shufflenet_v2_x0_5": True}
    markdown = (tables / f"golden--cifar10--{CPU_STEM}--summary.md").read_text()
    assert "| resnet56 |" in markdown and "94.00 ± 0.50" in markdown


def test_readme_groups_by_hardware_and_latency_columns_name_the_device(readme):
    assert "### cifar10 on cpu: Fixture CPU (not a real machine), 2 threads" in readme
    assert "### cifar10 on cuda: Fixture GPU (not a real machine)" in readme
    assert "Batch-1 latency (ms, cpu)" in readme and "Batch-1 latency (ms, cuda)" in readme
    # The GPU run (95.0) is reported on its own, never pooled into the CPU mean (91.5).
    assert "95.00 ± —" in readme and "91.50 ± 0.50" in readme


def test_findings_come_from_the_data(readme):
    assert "Most accurate: resnet56 (resnet_v1)" in readme
    assert "resnet56 leads densenet40 by 1.50 points, not significant" in readme
    assert "Pareto-optimal in accuracy vs MACs (no model is both cheaper and more accurate): " \
           "shufflenet_v2_x0_5, resnet20, resnet56." in readme
    assert "Fastest at batch 1: shufflenet_v2_x0_5" in readme


def test_recipe_is_stated_once_per_study(readme):
    golden = readme.split("## Study: golden")[1].split("## Study:")[0]
    assert golden.count("### Recipe and budget") == 1
    assert "budget.epochs: 3" in golden and "name: he2015" in golden
    assert "Warning" not in golden


def test_profile_study_has_complexity_tables_not_accuracy(readme):
    latency = readme.split("## Study: latency")[1].split("## Excluded runs")[0]
    assert "Profile-only study" in latency
    assert "| efficientnet_v2_s |" in latency and "Test top-1" not in latency


def test_published_numbers_beside_measured_for_the_papers_recipe(report, readme):
    published = report / "tables" / f"golden--cifar10--{CPU_STEM}--published.md"
    text = published.read_text()
    assert "| resnet20 | he2015 | He et al. 2015 |" in text and "8.75" in text
    assert "8.50 ± 0.50" in text  # measured error = 100 - 91.50
    # densenet40 has a published CIFAR-10 row, but the study used the ResNet recipe.
    assert "densenet40" not in text
    assert "published numbers beside measured" in readme


def test_excluded_runs_are_listed_with_reasons(report, readme):
    excluded = readme.split("## Excluded runs")[1]
    for record, reason in [
        ("runs/golden/cifar10/resnet110/seed0/record.json", "unreadable: corrupt JSON"),
        ("runs/golden/cifar10/resnet32/seed0/record.json", "schema 0 is older"),
        ("runs/golden/cifar10/resnet44/seed0/record.json", "failed: RuntimeError"),
        ("runs/golden/cifar10/resnet44/seed1/record.json", "diverged"),
        ("runs/golden/cifar10/wrn16_4/seed0/record.json", "without a test_top1"),
        ("runs/smoke/synthetic/resnet20/seed0/record.json", "synthetic data"),
    ]:
        line = next(line for line in excluded.splitlines() if record in line)
        assert reason in line
    html_text = (report / "index.html").read_text(encoding="utf-8")
    assert "schema 0 is older than this archbench&#x27;s schema 1" in html_text
    # Excluded models appear in no summary.
    assert "resnet44" not in readme.split("## Excluded runs")[0]


def _copy_fixtures(tmp_path, golden_models=None) -> Path:
    """A writable copy of the fixtures; `golden_models` keeps only those golden CPU models
    (fewer figures to draw, so the test stays fast)."""
    results_dir = tmp_path / "results"
    if golden_models is None:
        shutil.copytree(FIXTURES, results_dir)
        return results_dir
    for model in golden_models:
        shutil.copytree(FIXTURES / "runs/golden/cifar10" / model,
                        results_dir / "runs/golden/cifar10" / model)
    return results_dir


def test_disagreeing_budgets_within_a_study_raise_a_loud_warning(tmp_path):
    results_dir = _copy_fixtures(tmp_path, ["resnet20", "densenet40"])
    path = results_dir / "runs/golden/cifar10/densenet40/seed0/record.json"
    record = json.loads(path.read_text())
    record["config"]["train"]["budget"] = {"epochs": 5}
    path.write_text(json.dumps(record))
    out = build_report(results_dir, tmp_path / "report", study="golden", reference=REFERENCE)
    readme = (out / "README.md").read_text()
    warning = next(line for line in readme.splitlines() if line.startswith("> **Warning:**"))
    assert "NOT compared under an identical budget" in warning
    assert "budget.epochs: 3 (" in warning and "5 (densenet40)" in warning


def test_paper_recipe_study_states_each_recipe_and_compares_with_its_paper(tmp_path):
    results_dir = _copy_fixtures(tmp_path, ["resnet20", "resnet56", "densenet40"])
    for path in (results_dir / "runs/golden/cifar10/densenet40").glob("seed*/record.json"):
        record = json.loads(path.read_text())
        record["config"]["train"].update(name="densenet2017", batch_size=64)
        path.write_text(json.dumps(record))
    out = build_report(results_dir, tmp_path / "report", study="golden", reference=REFERENCE)
    readme = (out / "README.md").read_text()
    assert "Each model was trained with its own paper's recipe" in readme
    assert "densenet2017 (used by densenet40):" in readme
    assert "he2015 (used by resnet20, resnet56):" in readme
    assert "Warning" not in readme
    published = (out / "tables" / f"golden--cifar10--{CPU_STEM}--published.md").read_text()
    assert "| densenet40 | densenet2017 | Huang et al. 2017 |" in published


def test_failed_build_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    out = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*")
              if path.is_file()}

    def interrupted(*_arguments, **_keywords):
        raise RuntimeError("interrupted mid-build")

    monkeypatch.setattr(report_build.plots, "speed_vs_macs", interrupted)
    with pytest.raises(RuntimeError, match="interrupted mid-build"):
        build_report(FIXTURES, out, study="latency", reference=REFERENCE)
    after = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def test_a_folder_that_is_not_a_report_is_never_replaced(tmp_path):
    precious = tmp_path / "notes" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("months of work")
    with pytest.raises(FileExistsError, match="not an archbench report"):
        build_report(FIXTURES, precious.parent, reference=REFERENCE)
    assert precious.read_text() == "months of work"


def test_out_may_not_contain_the_records(tmp_path):
    results_dir = _copy_fixtures(tmp_path)
    with pytest.raises(ValueError, match="would delete the records"):
        build_report(results_dir, tmp_path, reference=REFERENCE)


def test_study_filter_and_unknown_study(tmp_path):
    out = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    readme = (out / "README.md").read_text()
    assert "## Study: latency" in readme and "## Study: golden" not in readme
    assert "resnet44" not in readme  # excluded records of other studies are not listed
    with pytest.raises(ValueError, match="available studies: golden, latency, smoke"):
        build_report(FIXTURES, tmp_path / "other", study="nope", reference=REFERENCE)


def test_empty_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no record.json under results_dir"):
        build_report(tmp_path, tmp_path.parent / f"{tmp_path.name}-report")


def test_cli_parses_hydra_style_arguments():
    options = parse_arguments(["results_dir=runs_here", "out=site", "study=demo",
                               "include_synthetic=true"])
    assert options == {"results_dir": "runs_here", "out": "site", "study": "demo",
                       "include_synthetic": True}
    assert parse_arguments([])["results_dir"] == "results"
    with pytest.raises(UsageError, match="unknown key 'outdir'; valid keys: results_dir, out"):
        parse_arguments(["outdir=x"])
    with pytest.raises(UsageError, match="include_synthetic=true or include_synthetic=false"):
        parse_arguments(["include_synthetic=maybe"])


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["colour=blue"]) == 2
    assert main([f"results_dir={FIXTURES}", f"out={tmp_path / 'r'}", "study=nope"]) == 1
    assert "available studies" in capsys.readouterr().err


def test_python_dash_m_builds_the_report_without_torch(tmp_path):
    out = tmp_path / "report"
    code = "\n".join([
        "import runpy, sys",
        "sys.argv = ['archbench.report'] + sys.argv[1:]",
        "try:",
        "    runpy.run_module('archbench.report', run_name='__main__', alter_sys=True)",
        "except SystemExit as exit:",
        "    assert exit.code == 0, exit.code",
        "assert 'torch' not in sys.modules and 'hydra' not in sys.modules, 'heavy import'",
    ])
    completed = subprocess.run(
        [sys.executable, "-c", code, f"results_dir={FIXTURES}", f"out={out}", "study=latency"],
        capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert (out / "README.md").is_file() and (out / "index.html").is_file()


def test_latex_escape_covers_specials():
    assert latex_escape("a_b & 50% ± #1") == r"a\_b \& 50\% $\pm$ \#1"


def test_time_to_target_column_only_when_a_target_was_set():
    runs = results.load(FIXTURES)
    golden_cpu = runs[(runs.study == "golden") & (runs.device == "cpu")]
    summary, ranking = results.summarize(golden_cpu), results.rank(golden_cpu)
    front = results.pareto_front(summary)
    with_target = accuracy_table(summary, ranking, front, "cpu", 90.0)
    without_target = accuracy_table(summary, ranking, front, "cpu", None)
    assert "Time to 90% (s)" in with_target.columns
    assert not [column for column in without_target.columns if column.startswith("Time to")]
