"""The record package as the one reader of records and the one home of their columns: a metric reaches the
runs and summaries from its declaration and the report from its display, one report build parses each record
once, and nothing else names or atomically replaces files (grep checks over the package)."""
import ast
import json
from pathlib import Path

import pytest

from archbench import record as rec
from archbench.record import storage
from archbench import results
from archbench.report import build_report
from archbench.report.metric_display import DISPLAYS, Display, declare_display
from archbench.report.tables import accuracy_table, optional_headings

from helpers import REPO, fixture_record, write_record
from test_report_tuning import NO_REFERENCE

PACKAGE = REPO / "archbench"


def _write_study(results_dir: Path, section: dict | None = None) -> Path:
    for model, family, base in (("resnet20", "resnet_v1", 90.0), ("densenet40", "densenet", 92.0)):
        for seed in range(2):
            record = fixture_record("fake", model, family, seed, test_top1=base + seed, val_top1=base)
            if section is not None:
                # Computed by the run (here: by the test) into a record section of its own.
                record["fake_section"] = {"score": section[model] + seed}
            write_record(results_dir, record, "v")
    return results_dir


FAKE = rec.Metric("fake_score", ("fake_section", "score"), "mean")
FAKE_DISPLAY = Display("Fake score (pts)", "number", 1)


def test_a_metric_reaches_the_runs_summary_and_report_from_its_declaration_and_display(tmp_path, monkeypatch):
    results_dir = _write_study(tmp_path / "results", {"resnet20": 3.0, "densenet40": 7.0})
    monkeypatch.setitem(rec.METRICS, FAKE.name, FAKE)  # the declaration and the display; removed after the test
    monkeypatch.setitem(DISPLAYS, FAKE.name, FAKE_DISPLAY)

    runs = results.load(results_dir)
    assert sorted(runs.groupby("model")["fake_score"].apply(list).items()) == [
        ("densenet40", [7.0, 8.0]), ("resnet20", [3.0, 4.0])]
    summary = results.summarize(runs)
    assert dict(zip(summary.model, summary.fake_score)) == {"densenet40": 7.5, "resnet20": 3.5}

    table = accuracy_table(summary, results.rank(runs), results.pareto_front(summary), "cpu", float("nan"))
    assert dict(zip(table.Model, table["Fake score (pts)"])) == {"densenet40": "7.5", "resnet20": "3.5"}

    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    summary_md = next((out / "tables").glob("fake--*--summary.md")).read_text()
    assert "Fake score (pts)" in summary_md and "| 7.5 |" in summary_md
    assert "fake_score" in (out / "runs.csv").read_text().splitlines()[0]


def test_without_the_declaration_the_section_is_not_a_column(tmp_path):
    runs = results.load(_write_study(tmp_path, {"resnet20": 3.0, "densenet40": 7.0}))
    assert "fake_score" not in runs and "fake_score" not in rec.METRICS
    assert "Fake score (pts)" not in optional_headings("cpu")


def test_a_metric_cannot_be_declared_twice():
    with pytest.raises(ValueError, match="'params' is declared already"):
        rec.register(rec.Metric("params", ("complexity", "params")))


def test_only_a_declared_metric_gets_a_display_and_only_one():
    with pytest.raises(ValueError, match="'fake_score' is not a declared metric"):
        declare_display("fake_score", FAKE_DISPLAY)
    with pytest.raises(ValueError, match="'params' has a display already"):
        declare_display("params", FAKE_DISPLAY)


def test_a_report_build_parses_each_record_once(tmp_path, monkeypatch):
    results_dir = _write_study(tmp_path / "results")
    parsed = []
    real_loads = json.loads

    def counting_loads(text, *args, **kwargs):
        value = real_loads(text, *args, **kwargs)
        if isinstance(value, dict) and "status" in value and "schema" in value:
            parsed.append(value["model"] + str(value["seed"]))
        return value

    monkeypatch.setattr(json, "loads", counting_loads)
    storage._PARSED.clear()
    build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    assert sorted(parsed) == ["densenet400", "densenet401", "resnet200", "resnet201"]


def test_a_rewritten_record_is_parsed_again(tmp_path):
    path = rec.write_record(tmp_path, {"schema": 2, "status": "failed"})
    assert rec.load_record(path)[0]["status"] == "failed"
    rec.write_record(tmp_path, {"schema": 2, "status": "diverg"})  # same size, maybe the same clock tick
    assert rec.load_record(path)[0]["status"] == "diverg"
    path.write_text("[1]")
    assert rec.load_record(path) == (None, "unreadable: top level is a list, not a JSON object")


# ------------------------------------------------------------------------------------- grep checks

def _docstrings(tree) -> set[int]:
    nodes = [tree] + [node for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(node.body[0].value) for node in nodes if node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}


def _offenders(matches, allowed: str) -> list[str]:
    """`path:line` of every node in the package's code (docstrings left out) for which `matches` holds."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative == allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _docstrings(tree)
        found += [f"{relative}:{node.lineno}" for node in ast.walk(tree)
                  if id(node) not in skipped and matches(node)]
    return sorted(set(found))


def _names_record_file(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "record.json" in node.value


def _replaces_a_file(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "os")


def _check(offenders: list[str], what: str):
    assert not offenders, f"{what}: " + ", ".join(offenders)


def test_only_the_record_module_names_the_record_file():
    _check(_offenders(_names_record_file, "archbench/record/storage.py"),
           "the record file named outside archbench/record/storage.py (use record.RECORD_FILE / record.record_path)")


def test_only_files_py_replaces_files():
    _check(_offenders(_replaces_a_file, "archbench/base/files.py"),
           "os.replace outside archbench/base/files.py (use files.atomic_write* / move_aside)")
