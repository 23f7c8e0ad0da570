"""Build the report folder from run records: README.md, index.html, tables/, figures/, runs.csv.

The report is a list of sections (SECTIONS, in reading order), each a module under sections/ that
turns the analysed runs into blocks; the blocks are rendered once as Markdown and once as HTML. A new
section is one module there and one line here. The folder is replaced only when the whole report is
written, and only if it holds nothing but a report's own files (folder.py).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from archbench import results
from archbench.results.ladder import ladder_studies

from .context import ReportContext, with_relative_paths
from .document import render_html, render_markdown
from .folder import (DEFAULT_OUT, DEFAULT_RESULTS_DIR, REPORT_MARKER, ReportInputError,
                     check_replaceable, write_marker, write_then_swap_in)
from .reference import load_reference
from .sections import across_studies, claim, excluded, glance, how_to_read, introduction, study
from .tables import CSV_FLOAT

__all__ = ["build_report", "write_report", "headline_studies", "ReportInputError", "REPORT_MARKER",
           "DEFAULT_RESULTS_DIR", "DEFAULT_OUT", "SECTIONS"]

SECTIONS = [
    introduction.section,    # title, what the report was built from, the command that rebuilds it
    glance.section,          # the headline studies, then one verdict per comparison
    how_to_read.section,     # what each number, mark and verdict means
    claim.section,           # each declared claim (archbench.claims) against the comparisons that can test it
    study.section,           # one section per study: recipe, confounds, each comparison's tables and figures
    across_studies.section,  # the same models over several comparisons
    excluded.section,        # every record found but not used, with the reason
]


def build_report(results_dir=DEFAULT_RESULTS_DIR, out=DEFAULT_OUT, study=None,
                 include_synthetic=False, reference=None, headline=None, ladders=None) -> Path:
    """Regenerate `out` from every record.json under `results_dir`; return the report folder.

    `study` limits the report to one study (or a comma-separated list). `reference` is the
    published-numbers table; by default it is read from archbench/models/reference.csv.
    `headline`: the studies the report opens with (default: `report.headline` in conf/experiment).
    `ladders`: {budget-ladder study: its base studies} (default: `report.ladder.base` in conf/experiment).
    """
    results_dir, out = Path(results_dir), Path(out)
    if not results_dir.is_dir():
        raise ReportInputError(
            f"results_dir={str(results_dir)!r} is not a folder"
            + (" (your runs go there once you run a study)"
               if str(results_dir) == DEFAULT_RESULTS_DIR else "")
            + ": run a study first (make run), or pass the folder that holds runs/<study>/..., "
            "e.g. results_dir=results/reference for the committed reference records")
    check_replaceable(out, results_dir)
    runs, excluded_runs = results.load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    if runs.empty and excluded_runs.empty:
        raise ReportInputError(
            f"no {results.RECORD_FILENAME} under results_dir={str(results_dir)!r}: run a study first "
            "(make run), or point results_dir at the folder that holds runs/")
    if study is not None:
        runs, excluded_runs = _select_studies(runs, excluded_runs, study, results_dir)
    reference_note = None
    if reference is None:
        reference, reference_note = load_reference()
    command = _command(results_dir, out, study, include_synthetic)
    write_then_swap_in(out, partial(write_report, runs=runs, excluded=excluded_runs, results_dir=results_dir,
                                    reference=reference, reference_note=reference_note, command=command,
                                    include_synthetic=include_synthetic, headline=headline, ladders=ladders))
    return out


def write_report(report_dir: Path, runs, excluded, results_dir: Path, reference,
                 reference_note, command: str, include_synthetic: bool = False, headline=None, ladders=None):
    """Write every report file into `report_dir` (an empty folder)."""
    context = ReportContext(report_dir, runs, excluded, results_dir, reference, reference_note, command,
                            include_synthetic, headline_studies() if headline is None else headline,
                            ladder_studies() if ladders is None else ladders)
    blocks = [block for section in SECTIONS for block in section(context)]
    (report_dir / "README.md").write_text(render_markdown(blocks), encoding="utf-8")
    (report_dir / "index.html").write_text(render_html(blocks, report_dir, introduction.TITLE),
                                           encoding="utf-8")
    # Paths relative to results_dir, so the committed report names no one's home folder.
    with_relative_paths(runs, results_dir).to_csv(report_dir / "runs.csv", index=False, float_format=CSV_FLOAT)
    write_marker(report_dir, command)


def headline_studies(conf_dir: Path | None = None) -> list[str]:
    """The studies whose config says `report: {headline: true}` (conf/experiment/*.yaml), by name."""
    import yaml

    conf_dir = Path(conf_dir) if conf_dir else Path(__file__).resolve().parents[2] / "conf" / "experiment"
    found = []
    for path in sorted(conf_dir.glob("*.yaml")):
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # a broken study config is Hydra's to report when the study runs
        if isinstance(config, dict) and (config.get("report") or {}).get("headline") and config.get("study"):
            found.append(str(config["study"]))
    return found


def _select_studies(runs, excluded, study, results_dir):
    wanted = [name.strip() for name in str(study).split(",") if name.strip()]
    available = sorted({str(name) for name in pd.concat([runs.get("study", pd.Series(dtype=str)),
                                                         excluded["study"]]).dropna()})
    unknown = [name for name in wanted if name not in available]
    if unknown or not wanted:
        raise ReportInputError(f"study={study!r} not found under results_dir={str(results_dir)!r}; "
                               f"available studies: {', '.join(available) or 'none'}")
    if not runs.empty:
        runs = runs[runs.study.isin(wanted)]
    # Records too broken to name their study are listed in every report.
    excluded = excluded[excluded.study.isin(wanted) | excluded.study.isna()]
    return runs, excluded


def _command(results_dir, out, study, include_synthetic) -> str:
    command = f"python -m archbench.report results_dir={results_dir} out={out}"
    if study is not None:
        command += f" study={study}"
    if include_synthetic:
        command += " include_synthetic=true"
    return command
