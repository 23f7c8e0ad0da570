"""Results export (`archbench-report export ...`) and the installed console commands."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from archbench.results import export
from archbench.results import load

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "records"
BIN = Path(sys.executable).parent


@pytest.fixture
def records(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "records")
    return tmp_path / "records"


def test_parquet_round_trips_through_pandas(records, tmp_path, capsys):
    out = tmp_path / "out" / "runs.parquet"
    assert export.main([f"results_dir={records}", f"out={out}"]) == 0
    expected = load(records)
    assert f"{len(expected)} runs" in capsys.readouterr().out
    # Parquet keeps the types; the text columns come back as pandas' string type.
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected.infer_objects())


def test_csv_round_trips_through_pandas(records, tmp_path):
    out = tmp_path / "runs.csv"
    assert export.main([f"results_dir={records}", f"out={out}"]) == 0
    expected = load(records)
    numeric = expected.select_dtypes("number").columns
    text = [c for c in expected.columns if c not in numeric and expected[c].dtype != bool]
    # Version-like text ("13.0" for cuda) must be read as text, as the export's docstring says.
    got = pd.read_csv(out, dtype={c: str for c in text})
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got[numeric], expected[numeric], check_dtype=False)
    pd.testing.assert_frame_equal(got[text].fillna(""), expected[text].fillna("").astype(str), check_dtype=False)
    assert got["synthetic"].tolist() == expected["synthetic"].tolist()


def test_include_synthetic_is_passed_through(records, tmp_path):
    plain = export.export(records, tmp_path / "a.csv")
    with_synthetic = export.export(records, tmp_path / "b.csv", include_synthetic=True)
    assert len(with_synthetic) == len(load(records, include_synthetic=True))
    assert len(with_synthetic) >= len(plain)


def test_docstring_names_every_column(records):
    columns = load(records, include_synthetic=True).columns
    documented = set(re.findall(r"[a-z][a-z0-9_]+", export.__doc__))
    missing = [column for column in columns if column not in documented]
    assert not missing, f"document these columns in archbench/results/export.py: {missing}"


@pytest.mark.parametrize("arguments, message", [
    (["results_dir=x"], "out= is required"),
    (["out=runs.json"], "must end in .parquet or .csv"),
    (["out=runs.csv", "result_dir=x"], "unknown key 'result_dir'"),
    (["out=runs.csv", "include_synthetic=maybe"], "include_synthetic=true"),
    (["runs.csv"], "is not key=value"),
    (["out=runs.csv", "results_dir=/nonexistent/folder"], "is not a directory"),
])
def test_bad_input_exits_2_naming_the_fix(arguments, message, capsys):
    assert export.main(arguments) == export.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("archbench.report: error: ")
    assert message in error


def test_no_usable_records_is_an_error_not_an_empty_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "runs.csv"
    assert export.main([f"results_dir={tmp_path / 'empty'}", f"out={out}"]) == export.EXIT_BAD_INPUT
    assert "no usable run records" in capsys.readouterr().err
    assert not out.exists()


def test_parquet_without_pyarrow_names_the_install(records, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    assert export.main([f"results_dir={records}", f"out={tmp_path / 'runs.parquet'}"]) == 2
    assert "pip install pyarrow" in capsys.readouterr().err


# --- console commands ([project.scripts]) -------------------------------------------------------------

def _command(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{path} is missing: install the package (pip install -e . or make setup)"
    return str(path)


def test_archbench_report_command_runs_the_export(records, tmp_path, capsys):
    bad = subprocess.run([_command("archbench-report"), "export", "out=runs.json"], capture_output=True, text=True)
    assert bad.returncode == export.main(["out=runs.json"]) == 2
    assert bad.stderr == capsys.readouterr().err  # the same message as `python -m archbench.report export`
    out = tmp_path / "runs.csv"
    done = subprocess.run([_command("archbench-report"), "export", f"results_dir={records}", f"out={out}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(out)) == len(load(records))


@pytest.mark.slow  # two starts of the training CLI (torch, Hydra): about 10 s on 2 busy cores
def test_archbench_command_runs_the_training_cli():
    command = subprocess.run([_command("archbench"), "--help"], capture_output=True, text=True)
    assert command.returncode == 0, command.stderr
    assert "logger: csv, mlflow, none, tensorboard" in command.stdout
    bad = subprocess.run([_command("archbench"), "model=resnett20"], capture_output=True, text=True)
    assert bad.returncode == 2  # bad input, as `python -m archbench model=resnett20`
    assert "closest: resnet20" in bad.stderr


# --- docs/notebook_example.md ---------------------------------------------------------------------------

def test_notebook_example_runs_on_the_fixture_records(records, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    text = (Path(__file__).resolve().parent.parent / "docs" / "notebook_example.md").read_text()
    cells = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = "\n".join(cells).replace('RESULTS = "results/runs"', f"RESULTS = {str(records)!r}")
    assert str(records) in code  # the example still names its results folder the same way
    namespace: dict = {}
    exec(compile(code, "notebook_example.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert len(namespace["summary"]) == len(load(records).groupby(["study", "data", "hardware", "model",
                                                                   "variant"]))
    assert (tmp_path / "accuracy_vs_macs.png").stat().st_size > 0
    import matplotlib.pyplot as plt

    plt.close("all")
