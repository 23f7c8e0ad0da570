"""Golden tests of the report on hand-written fixture records (tests/fixtures/records)."""
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from archbench import report_cli
from archbench.report import build as report_build
from archbench.report import figures as plots
from archbench.report import build_report
from archbench import results
from archbench.report.labels import count_text, dataset_label
from archbench.report.reference import PAPER_RECIPES
from archbench.report.tables import accuracy_table, latex_escape
from archbench.report_cli import UsageError, main, parse_arguments
from helpers import REPO

FIXTURES = Path(__file__).parent / "fixtures" / "records"
TRAIN_FIGURES = ["acc-vs-macs", "acc-vs-latency", "acc-vs-throughput", "params-vs-acc",
                 "val-vs-epoch", "val-vs-time", "family-dots", "acc-vs-activations"]
PROFILE_FIGURES = ["latency-vs-macs", "throughput-vs-macs", "latency-vs-activations"]
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
    # Every table opens with the page: none is folded away behind a click (a new user missed the summary).
    assert "<details" not in (report / "index.html").read_text(encoding="utf-8")


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
    assert "### CIFAR-10 on cpu: Fixture CPU (not a real machine), 2 threads" in readme
    assert "### CIFAR-10 on cuda: Fixture GPU (not a real machine)" in readme
    assert "Batch-1 latency (ms, cpu)" in readme and "Batch-1 latency (ms, cuda)" in readme
    # The GPU run (95.0) is reported on its own, never pooled into the CPU mean (91.5).
    assert "95.00 ± —" in readme and "91.50 ± 0.50" in readme


def test_findings_come_from_the_data(readme):
    assert "Highest mean test top-1: resnet56 (resnet_v1)" in readme
    assert ("resnet56's mean is 1.50 points above densenet40's: not separated by these seeds (unadjusted 95% interval of the "
            "gap ") in readme
    assert "Welch over seeds; Holm p = 0.29 ≥ 0.05; raw Welch p = 0.14)" in readme
    assert "resnet56 beats densenet40 in 100% of 6 pairs of seeds" in readme
    assert "Separated from the best, below it (Holm p < 0.05): resnet20." in readme
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


def test_published_numbers_are_hidden_beside_a_short_run_and_the_report_says_why(report,
                                                                             readme):
    assert not list((report / "tables").glob("*--published.*"))
    line = next(line for line in readme.splitlines() if line.startswith("- resnet20: published"))
    assert "budget 3 epochs instead of the paper's 164 epochs" in line
    assert "5,000 training images held out for validation" in line
    assert "trained on 45,000 of 50,000 training images" in line
    assert "densenet40: published numbers not shown: trained with recipe he2015" in readme


def _make_faithful(path: Path):
    """Turn a fixture record into the paper's experiment: he2015 unchanged, 164 epochs, all
    50,000 training images and no validation hold-out."""
    record = json.loads(path.read_text())
    record["config"]["train"]["budget"] = {"epochs": 164}
    record["config"]["train"]["scheduler"]["milestones"] = [0.5, 0.75]
    record["config"]["data"].update(val_size=0, train_size=None)
    record["dataset"].update(train_size=50000, val_size=0)
    path.write_text(json.dumps(record))


def test_how_to_read_promises_only_what_the_report_does_about_published_numbers(readme):
    how_to_read = readme.split("## How to read")[1].split("## Study:")[0]
    [line] = [line for line in how_to_read.splitlines() if line.startswith("- Published numbers")]
    # The reasons are listed only for models with a published number on the study's dataset.
    assert "otherwise the report says why" not in line
    assert "the study lists why its published numbers are left out; other studies show none" in line


def test_published_numbers_are_shown_beside_a_faithful_run(tmp_path):
    results_dir = _copy_fixtures(tmp_path, ["resnet20", "resnet56"])
    for path in (results_dir / "runs/golden/cifar10/resnet20").glob("seed*/record.json"):
        _make_faithful(path)
    out = build_report(results_dir, tmp_path / "report", reference=REFERENCE)
    published = (out / "tables" / f"golden--cifar10--{CPU_STEM}--published.md").read_text()
    assert "| resnet20 | he2015 | 3 seeds | He et al. 2015 |" in published and "8.75" in published
    assert "8.50 ± 0.50" in published  # measured error = 100 - 91.50
    assert "resnet56" not in published  # still the 3-epoch run
    readme = (out / "README.md").read_text()
    assert "resnet56: published numbers not shown" in readme


def test_a_changed_recipe_hides_the_published_numbers(tmp_path):
    results_dir = _copy_fixtures(tmp_path, ["resnet20"])
    for path in (results_dir / "runs/golden/cifar10/resnet20").glob("seed*/record.json"):
        _make_faithful(path)
        record = json.loads(path.read_text())
        record["config"]["train"]["optimizer"]["lr"] = 0.05
        path.write_text(json.dumps(record))
    out = build_report(results_dir, tmp_path / "report", reference=REFERENCE)
    assert not list((out / "tables").glob("*--published.*"))
    assert "recipe changed from the paper's (optimizer.lr)" in (out / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(PAPER_RECIPES))
def test_paper_recipes_table_matches_the_recipe_configs(name):
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        train = compose(config_name="config", overrides=[f"train={name}"]).train
    recipe = PAPER_RECIPES[name]
    assert train.budget.epochs == recipe.epochs
    for key, value in recipe.settings.items():
        section, _dot, leaf = key.rpartition(".")
        configured = (train[section] if section else train)[leaf]
        assert (list(configured) if value.__class__ is list else configured) == value, key


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
    assert "schema 0 is older than the schemas this archbench reads" in html_text
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
    # Its own paper's recipe, but 3 epochs of 300: still not the paper's experiment.
    assert ("densenet40: published numbers not shown: budget 3 epochs instead of the "
            "paper's 300 epochs") in readme


def test_failed_build_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    out = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*")
              if path.is_file()}

    def interrupted(*_arguments, **_keywords):
        raise RuntimeError("interrupted mid-build")

    monkeypatch.setattr(plots, "speed_vs_macs", interrupted)
    with pytest.raises(RuntimeError, match="interrupted mid-build"):
        build_report(FIXTURES, out, study="latency", reference=REFERENCE)
    after = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def test_a_folder_that_is_not_a_report_is_never_replaced(tmp_path):
    precious = tmp_path / "notes" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("months of work")
    with pytest.raises(report_build.ReportInputError, match="not an archbench report"):
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
    with pytest.raises(report_build.ReportInputError, match="no record.json under results_dir"):
        build_report(tmp_path, tmp_path.parent / f"{tmp_path.name}-report")


def test_cli_parses_hydra_style_arguments():
    options = parse_arguments(["results_dir=runs_here", "out=site", "study=demo",
                               "include_synthetic=true"])
    assert options == {"results_dir": "runs_here", "out": "site", "study": "demo",
                       "include_synthetic": True}
    # With no arguments: the user's own runs, into a git-ignored folder outside report/.
    assert parse_arguments([]) == {"results_dir": "results/runs", "out": "results/report",
                                   "study": None, "include_synthetic": False}
    with pytest.raises(UsageError, match="unknown key 'outdir'; valid keys: results_dir, out"):
        parse_arguments(["outdir=x"])
    with pytest.raises(UsageError, match="include_synthetic=true or include_synthetic=false"):
        parse_arguments(["include_synthetic=maybe"])


@pytest.mark.parametrize("arguments, named, fix", [
    (["colour=blue"], "'colour'", "valid keys: results_dir"),
    (["results_dir=nonexistent"], "results_dir='nonexistent'", "results_dir=results/reference"),
    (["study=nope"], "study='nope'", "available studies: golden, latency, smoke"),
    (["out=notes"], "out='notes'", "pass a new or empty folder"),
    (["out=file.txt"], "out='file.txt'", "pass a folder for the report"),
    (["include_synthetic=maybe"], "include_synthetic='maybe'", "include_synthetic=true"),
])
def test_every_bad_input_exits_2_with_one_paragraph_naming_value_and_fix(
        tmp_path, monkeypatch, capsys, arguments, named, fix):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("months of work")
    (tmp_path / "file.txt").write_text("")
    if not any(argument.startswith("results_dir=") for argument in arguments):
        arguments = [f"results_dir={FIXTURES}"] + arguments
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("archbench.report: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert named in captured.err and fix in captured.err
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "months of work"


def test_no_arguments_reports_your_runs_into_results_report(tmp_path, monkeypatch, capsys):
    shutil.copytree(FIXTURES / "runs/latency", tmp_path / "results/runs/latency")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert "results/report/README.md" in capsys.readouterr().out
    assert (tmp_path / "results/report/index.html").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results"]


def test_no_runs_yet_says_how_to_get_some(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    error = capsys.readouterr().err
    assert "results_dir='results/runs' is not a folder" in error and "make run" in error


def test_a_report_is_never_built_inside_another_report(tmp_path):
    outer = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    with pytest.raises(report_build.ReportInputError, match="inside the report folder"):
        build_report(FIXTURES, outer / "local", study="latency", reference=REFERENCE)
    assert not (outer / "local").exists()


def test_a_rebuild_refuses_to_delete_files_it_did_not_write(tmp_path):
    out = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    foreign = out / "local" / "README.md"
    foreign.parent.mkdir()
    foreign.write_text("another output")
    with pytest.raises(report_build.ReportInputError, match="local/README.md"):
        build_report(FIXTURES, out, study="latency", reference=REFERENCE)
    assert foreign.read_text() == "another output"
    foreign.unlink()
    foreign.parent.rmdir()
    # Its own files only: the rebuild goes ahead.
    assert build_report(FIXTURES, out, study="latency", reference=REFERENCE) == out


def test_a_report_made_before_the_file_list_is_still_rebuilt_but_guarded(tmp_path):
    out = build_report(FIXTURES, tmp_path / "report", study="latency", reference=REFERENCE)
    (out / report_build.REPORT_MARKER).write_text("Generated by archbench.report\n")
    assert build_report(FIXTURES, out, study="latency", reference=REFERENCE) == out
    (out / report_build.REPORT_MARKER).write_text("Generated by archbench.report\n")
    (out / "local").mkdir()
    (out / "local" / "index.html").write_text("another output")
    with pytest.raises(report_build.ReportInputError, match="local/index.html"):
        build_report(FIXTURES, out, study="latency", reference=REFERENCE)


def test_export_subcommand_is_handed_to_archbench_results_export(monkeypatch):
    received = []
    monkeypatch.setattr(report_cli.export, "main", lambda arguments: received.append(arguments) or 0)
    assert main(["export", "format=csv"]) == 0
    assert received == [["format=csv"]]


def test_report_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "archbench.report", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "export" in out.stdout and "compare" in out.stdout
    out = subprocess.run([sys.executable, "-m", "archbench.report", "export", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "out=runs.parquet" in out.stdout


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


def _summary(points: dict, seeds: int) -> pd.DataFrame:
    """A summary of one comparison: model -> (MACs, params, mean accuracy), `seeds` each."""
    return pd.DataFrame([
        {"study": "s", "data": "d", "hardware": "h", "model": model, "label": model,
         "family": "fam", "macs": macs, "params": params, "test_top1_mean": mean,
         "test_top1_std": 0.5 if seeds > 1 else float("nan"), "test_top1_n": seeds}
        for model, (macs, params, mean) in points.items()])


def _error_bar_segments(axes) -> int:
    """Vertical or horizontal error-bar segments drawn on `axes`."""
    from matplotlib.container import ErrorbarContainer

    return sum(len(collection.get_segments()) for container in axes.containers
               if isinstance(container, ErrorbarContainer) for collection in container[2])


POINTS = {"small": (1e6, 0.1e6, 80.0), "mid": (5e6, 0.5e6, 85.0), "big": (40e6, 4e6, 90.0)}


@pytest.mark.parametrize("draw", [
    lambda summary: plots.accuracy_vs(summary, "macs", "MACs", "t", {"fam": "C0"}, scale=1e6),
    lambda summary: plots.params_vs_accuracy(summary, "t", {"fam": "C0"}),
    lambda summary: plots.family_dots(summary, "t", {"fam": "C0"}),
])
def test_one_seed_draws_no_error_bar_and_says_one_seed(draw):
    one_seed = draw(_summary(POINTS, seeds=1))
    axes = one_seed.axes[0]
    assert _error_bar_segments(axes) == 0
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert plots.ONE_SEED_NOTE in legend
    three_seeds = draw(_summary(POINTS, seeds=3))
    assert _error_bar_segments(three_seeds.axes[0]) == len(POINTS)
    assert plots.ONE_SEED_NOTE not in [text.get_text()
                                       for text in three_seeds.axes[0].get_legend().get_texts()]


def test_seed_counts_are_never_written_1_seeds():
    assert count_text(1, "seed") == "1 seed" and count_text(3, "seed") == "3 seeds"
    figure = plots.family_dots(_summary(POINTS, seeds=1), "t", {"fam": "C0"})
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels and all(label.endswith("(1 seed)") for label in labels)


def test_log_axis_has_several_readable_tick_labels():
    figure = plots.params_vs_accuracy(_summary(POINTS, seeds=3), "t", {"fam": "C0"})
    axes = figure.axes[0]
    figure.canvas.draw()
    assert axes.get_xscale() == "log"
    low, high = axes.get_xlim()
    shown = [label.get_text() for label, location in zip(axes.get_xticklabels(),
                                                         axes.get_xticks())
             if low <= location <= high and label.get_text()]
    assert len(shown) >= 3, shown
    assert all("10^" not in label and "$" not in label for label in shown)


def test_pareto_front_of_one_point_is_still_drawn():
    # "big" is cheapest and best: it alone is the front.
    dominant = {"big": (1e6, 4e6, 95.0), "mid": (5e6, 0.5e6, 85.0), "small": (9e6, 0.1e6, 80.0)}
    summary = _summary(dominant, seeds=3)
    front = pd.Series([True, False, False], index=summary.index)
    figure = plots.accuracy_vs(summary, "macs", "MACs", "t", {"fam": "C0"}, scale=1e6,
                               on_front=front)
    staircase = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"
                 and len(line.get_xdata()) >= 2]
    assert staircase and max(staircase[0].get_xdata()) == pytest.approx(9.0)
    assert "Pareto front" in [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_epoch_axis_has_integer_ticks():
    curves = pd.DataFrame([{"label": "m", "seed": 0, "epoch": epoch, "val_top1": 50.0 + epoch}
                           for epoch in range(3)])
    figure = plots.validation_curves(curves, "epoch", "Epoch", "t", {"m": "fam"}, {"fam": "C0"})
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks)


def test_one_evaluated_epoch_draws_no_learning_curve():
    curves = pd.DataFrame([{"label": m, "seed": seed, "epoch": 0, "elapsed_s": 40.0 + seed, "val_top1": 45.0}
                           for m in ("m", "n") for seed in range(3)])
    for x in ("epoch", "elapsed_s"):
        assert plots.validation_curves(curves, x, x, "t", {"m": "fam", "n": "fam"}, {"fam": "C0"}) is None
    two_epochs = pd.concat([curves, curves.assign(epoch=1, elapsed_s=80.0)])
    assert plots.validation_curves(two_epochs, "epoch", "Epoch", "t", {"m": "fam", "n": "fam"},
                                   {"fam": "C0"}) is not None


def test_dataset_labels_name_what_the_data_is():
    assert dataset_label("cifar10_jpg") == "CIFAR-10 (JPEG image folder)"
    assert dataset_label("fashion_mnist") == "Fashion-MNIST"
    assert dataset_label("imagefolder", "flowers102.tar.gz") == "flowers102.tar.gz"
    assert dataset_label("my_data") == "my_data"


def test_at_a_glance_opens_the_report_with_a_verdict_per_comparison(readme):
    assert readme.index("## At a glance") < readme.index("## How to read") \
        < readme.index("## Study:")
    glance = readme.split("## At a glance")[1].split("## How to read")[0]
    verdicts = [line for line in glance.splitlines() if line.startswith("- ")]
    assert len(verdicts) == 3  # golden on CPU, golden on GPU, latency (profile only)
    # a verdict of several sentences: its title, then one point a line beneath it
    blocks = re.split(r"\n(?=- )", glance.strip())
    cpu = next(block for block in blocks if block.startswith("- **golden, CIFAR-10 on cpu: Fixture CPU"))
    assert cpu.splitlines()[0].endswith("threads**:") and all(line.startswith("  - ") for line in cpu.splitlines()[1:])
    assert "resnet56 has the highest mean test top-1 (94.0%)" in cpu
    assert "1 of 6 pairwise gaps is separated at 95% confidence" in cpu
    assert "cannot separate densenet40 and shufflenet_v2_x0_5 from resnet56" in cpu
    assert "after 3 epochs" in cpu
    assert "profile only" in next(line for line in verdicts if line.startswith("- **latency"))


def test_how_to_read_says_verdicts_use_the_holm_adjusted_p(readme):
    how_to_read = readme.split("## How to read")[1].split("## Study:")[0]
    assert "every verdict uses the Holm-adjusted p-value" in how_to_read


def test_html_tables_sort_with_an_inline_script(report):
    html_text = (report / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html_text, flags=re.S)
    assert len(scripts) == 1 and scripts[0][0] == ""  # inline: no src, no external file
    assert "addEventListener(\"click\"" in scripts[0][1] and "sort" in scripts[0][1]


DIRTY_NOTE = ("† made from a working tree with uncommitted changes: not reproducible from its commit "
              "(resnet20: 1 of 3 runs).")


def _table_rows(text: str, caption_start: str) -> list[str]:
    """The Markdown rows of the table whose caption starts with `caption_start`, and the line
    after the table."""
    lines = text.split(caption_start, 1)[1].splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| "))
    end = next(index for index in range(start, len(lines)) if not lines[index].startswith("|"))
    return lines[start:end] + [lines[end + 1] if end + 1 < len(lines) else ""]


def test_a_model_with_a_run_from_a_dirty_tree_is_marked_wherever_its_results_are(tmp_path):
    results_dir = _copy_fixtures(tmp_path, ["resnet20", "resnet56"])
    path = results_dir / "runs/golden/cifar10/resnet20/seed1/record.json"
    record = json.loads(path.read_text())
    record["env"]["git_dirty"] = True
    path.write_text(json.dumps(record))
    out = build_report(results_dir, tmp_path / "report", reference=REFERENCE)
    readme = (out / "README.md").read_text(encoding="utf-8")

    summary = _table_rows(readme, "*golden / CIFAR-10: summary over seeds")
    resnet20 = next(row for row in summary if "resnet20" in row)
    resnet56 = next(row for row in summary if "resnet56" in row)
    assert "| resnet20 † |" in resnet20
    assert "| resnet56 |" in resnet56 and "†" not in resnet56  # only clean runs: unmarked
    assert summary[-1] == DIRTY_NOTE  # the sentence right under the table
    significance = _table_rows(readme, "*golden / CIFAR-10 on cpu")
    assert significance[2].startswith("| resnet56 | resnet20 † |") and significance[-1] == DIRTY_NOTE
    stem = f"golden--cifar10--{CPU_STEM}--summary"
    assert DIRTY_NOTE in (out / "tables" / f"{stem}.md").read_text(encoding="utf-8")
    assert r"resnet20 \dag{}" in (out / "tables" / f"{stem}.tex").read_text(encoding="utf-8")

    html_text = (out / "index.html").read_text(encoding="utf-8")
    assert '<td class="text">resnet20 †</td>' in html_text and "resnet56 †" not in html_text
    assert f'<p class="note">{DIRTY_NOTE}</p>' in html_text


def test_a_report_of_clean_runs_marks_nothing(readme):
    assert "not reproducible from its commit" not in readme
    assert not [line for line in readme.splitlines() if line.startswith("|") and "†" in line]


def test_at_a_glance_ranking_verdict_names_only_swaps_beyond_noise():
    from archbench.report.findings import ranking_verdict

    def swap(after, before, separated):
        return {"ahead_after": after, "ahead_before": before, "gap_before": 1.0, "gap_after": 2.0,
                "separated": separated}

    shift = {"models": 3, "tau": 0.33, "swapped": [swap("b", "a", False), swap("c", "a", True)]}
    full = ranking_verdict(shift, "clean", "corrupted")
    brief = ranking_verdict(shift, "clean", "corrupted", brief=True)
    assert "b over a" in full and "c over a" in full
    assert "c over a" in brief and "b over a" not in brief and "the seeds separate 1 of them in the new order" in brief
    # the glance states tau and its interval; the rule behind 'holds' is said once, in 'How to read'
    interval = {**shift, "verdict": "inconclusive", "tau_low": -0.2, "tau_high": 1.0}
    assert "it holds when the whole interval" in ranking_verdict(interval, "clean", "corrupted")
    brief = ranking_verdict(interval, "clean", "corrupted", brief=True)
    assert "0.33, 95% interval -0.20 to 1.00, 3 models)" in brief and "it holds when" not in brief
    quiet = ranking_verdict({**shift, "swapped": [swap("b", "a", False)]}, "clean", "corrupted", brief=True)
    assert "b over a" not in quiet and "inconclusive (Kendall tau 0.33, 3 models). 1 of 3 pairs swaps order; " \
        "the seeds separate none of them in the new order." in quiet
