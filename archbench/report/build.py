"""Build the report folder from run records: README.md, index.html, tables/, figures/, runs.csv.

The new report is written into a hidden sibling folder and swapped in only when complete, so an
interrupted or failed build leaves the previous report as it was. A rebuild replaces only a
folder that holds nothing but what the report wrote (its marker file lists those files), so a
report never deletes another output or a user's file.
"""
from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd

from archbench.results import (
    GROUP_KEYS,
    RECORD_FILENAME,
    SIGNIFICANCE_LEVEL,
    across_studies,
    bootstrap_means,
    compare,
    confounds,
    confounds_text,
    evaluation,
    expected_best,
    history,
    load_with_exclusions,
    pareto_front,
    pool_order_seeds,
    rank,
    ranking_shift,
    reliability_curve,
    shared_counterparts,
    study_kind,
    summarize,
    tuning_gain,
    variance_sources,
    with_evaluation,
)
from archbench.tuning import RECIPE_PATHS, best_trials

from . import figures as plots
from .document import (
    BulletList,
    Caution,
    Code,
    Figure,
    Glance,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from .findings import (
    corruption_method_text,
    glance_verdict,
    lead_in,
    profile_findings,
    ranking_verdict,
    train_findings,
    tuning_findings,
    tuning_gain_sentence,
    variance_findings,
    variance_verdict,
)
from .labels import count_text, frame_dataset_label
from .reference import PAPER_RECIPES, load_reference, published_beside_measured
from .tables import (
    CSV_FLOAT,
    accuracy_table,
    best_trials_table,
    dirty_note,
    evaluation_table,
    excluded_table,
    is_missing,
    relative_path,
    profile_table,
    runs_dirty_note,
    significance_table,
    summary_dirty_note,
    under_load_note,
    headline_table,
    trials_table,
    tuning_gain_table,
    variance_table,
    write_table,
)

# Present in every report folder: names the command that made it and every file it wrote.
REPORT_MARKER = ".archbench-report"
_MANIFEST_HEADING = "Files written (a rebuild replaces this folder only if it holds no others):"
# What a report held before its marker listed its files.
_LEGACY_LAYOUT = {"README.md", "index.html", "runs.csv", "tables", "figures", REPORT_MARKER}
TITLE = "archbench report"
# The user's own runs, and a git-ignored place for their report (never the committed report/).
DEFAULT_RESULTS_DIR = "results/runs"
DEFAULT_OUT = "results/report"


class ReportInputError(ValueError):
    """Arguments that cannot make a report (unknown study, out folder that holds the records)."""


def build_report(results_dir=DEFAULT_RESULTS_DIR, out=DEFAULT_OUT, study=None,
                 include_synthetic=False, reference=None, headline=None) -> Path:
    """Regenerate `out` from every record.json under `results_dir`; return the report folder.

    `study` limits the report to one study (or a comma-separated list). `reference` is the
    published-numbers table; by default it is read from archbench/models/reference.csv.
    `headline`: the studies the report opens with (default: `report.headline` in conf/experiment).
    """
    results_dir, out = Path(results_dir), Path(out)
    if not results_dir.is_dir():
        raise ReportInputError(
            f"results_dir={str(results_dir)!r} is not a folder"
            + (" (your runs go there once you run a study)"
               if str(results_dir) == DEFAULT_RESULTS_DIR else "")
            + ": run a study first (make run), or pass the folder that holds runs/<study>/..., "
            "e.g. results_dir=results/reference for the committed reference records")
    _check_replaceable(out, results_dir)
    runs, excluded = load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    if runs.empty and excluded.empty:
        raise ReportInputError(
            f"no {RECORD_FILENAME} under results_dir={str(results_dir)!r}: run a study first "
            "(make run), or point results_dir at the folder that holds runs/")
    if study is not None:
        runs, excluded = _select_studies(runs, excluded, study, results_dir)
    reference_note = None
    if reference is None:
        reference, reference_note = load_reference()

    command = _command(results_dir, out, study, include_synthetic)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        write_report(staging, runs, excluded, results_dir, reference, reference_note, command,
                     include_synthetic, headline)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, out)
    return out


def _check_replaceable(out: Path, results_dir: Path):
    if out.exists() and not out.is_dir():
        raise ReportInputError(f"out={str(out)!r} is a file: pass a folder for the report, "
                               f"e.g. out={DEFAULT_OUT}")
    resolved_out, resolved_results = out.resolve(), results_dir.resolve()
    if resolved_results == resolved_out or resolved_out in resolved_results.parents:
        raise ReportInputError(f"out={str(out)!r} contains results_dir={str(results_dir)!r}; "
                               "replacing it would delete the records: pass another out folder, "
                               f"e.g. out={DEFAULT_OUT}")
    enclosing = next((parent for parent in resolved_out.parents
                      if (parent / REPORT_MARKER).is_file()), None)
    if enclosing is not None:
        raise ReportInputError(
            f"out={str(out)!r} is inside the report folder {str(enclosing)!r}, whose next "
            "rebuild would delete it: pass a folder outside any report, e.g. "
            f"out={DEFAULT_OUT}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / REPORT_MARKER).exists():
        raise ReportInputError(
            f"out={str(out)!r} exists and is not an archbench report (no {REPORT_MARKER} file), "
            "so it will not be replaced: pass a new or empty folder")
    foreign = _foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise ReportInputError(
            f"out={str(out)!r} holds files that archbench.report did not write ({shown}), and "
            "a rebuild would delete them: move them out of that folder first, or pass "
            "another out folder")


def _foreign_files(out: Path) -> list[str]:
    """Files under the report folder `out` that its marker does not list as the report's own."""
    marker = (out / REPORT_MARKER).read_text(encoding="utf-8", errors="replace").splitlines()
    present = sorted(path.relative_to(out).as_posix() for path in out.rglob("*")
                     if not path.is_dir())
    if _MANIFEST_HEADING in marker:
        owned = set(marker[marker.index(_MANIFEST_HEADING) + 1:]) | {REPORT_MARKER}
        return [path for path in present if path not in owned]
    return [path for path in present if path.split("/")[0] not in _LEGACY_LAYOUT]


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


def _swap_in(staging: Path, out: Path):
    """Replace `out` by `staging` with renames: old aside, new in, old deleted."""
    aside = None
    if out.exists():
        aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(aside)
    try:
        staging.rename(out)
    except BaseException:
        if aside is not None:
            aside.rename(out)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def write_report(report_dir: Path, runs, excluded, results_dir: Path, reference,
                 reference_note, command: str, include_synthetic: bool = False, headline=None):
    """Write every report file into `report_dir` (an empty folder)."""
    writer = _ReportWriter(report_dir, runs, reference)
    studies = writer.study_order(headline_studies() if headline is None else headline)
    blocks = _introduction(runs, excluded, results_dir, command)
    blocks += [Heading("At a glance", 2)]
    headline = [study for study in studies if study in writer.headline]
    for study in headline:
        blocks += writer.headline_blocks(study)
    others = [verdict for keys, verdict in writer.verdicts(studies) if keys[0] not in headline]
    if headline and others:
        blocks.append(Paragraph("The other comparisons, in the order of the sections below:"))
    if others or not headline:
        blocks.append(Glance(others or [("No usable runs", "nothing to compare.")]))
    blocks += _how_to_read(reference_note, include_synthetic)
    for study in studies:
        blocks += writer.study_section(study)
    blocks += writer.across_studies_section()
    blocks += _excluded_section(writer, excluded, results_dir)

    (report_dir / "README.md").write_text(render_markdown(blocks), encoding="utf-8")
    (report_dir / "index.html").write_text(render_html(blocks, report_dir, TITLE),
                                           encoding="utf-8")
    # Paths relative to results_dir, so the committed report names no one's home folder.
    _with_relative_paths(runs, results_dir).to_csv(report_dir / "runs.csv", index=False, float_format=CSV_FLOAT)
    written = sorted(path.relative_to(report_dir).as_posix() for path in report_dir.rglob("*")
                     if path.is_file())
    (report_dir / REPORT_MARKER).write_text(
        f"Generated by archbench.report; regenerate with:\n{command}\n{_MANIFEST_HEADING}\n"
        + "".join(f"{path}\n" for path in written), encoding="utf-8")


def _introduction(runs, excluded, results_dir, command):
    return [
        Heading(TITLE, 1),
        Paragraph(f"Generated from {len(runs)} usable run records under {results_dir}; "
                  f"{count_text(len(excluded), 'record')} {'was' if len(excluded) == 1 else 'were'} excluded "
                  "(listed under 'Excluded runs'). "
                  "This file is generated: regenerate it rather than editing it, with:"),
        Code(command),
    ]


def _how_to_read(reference_note, include_synthetic):
    blocks = [
        Heading("How to read this report", 2),
        BulletList([
            "Accuracies are percentages. 'mean ± std' is over seeds (sample standard "
            "deviation); '95% CI' is the Student-t half-width of the mean. One seed has an "
            "unknown spread, shown as '—', and no error bar in the figures.",
            "Pairwise tests: where every run of both models saved its per-image test outcomes, a "
            "two-level bootstrap that draws the test images once for both models (they are scored on "
            "the same images, so their errors are paired) and the seeds within each; otherwise (runs "
            "made before outcomes were saved; the 'Test' column says which) Welch t-tests over seeds "
            "with the independent test-set floor below. Because a study tests many pairs at "
            "once, every verdict uses the Holm-adjusted p-value (over all pairs of the same "
            f"comparison), not the raw one: 'separated' means Holm p < {SIGNIFICANCE_LEVEL}; 'not "
            "separated by these seeds' says only that: each study states the gap its seeds separate "
            "at 80% power and, per pair not separated, roughly how many seeds would. Both p-values "
            "are shown.",
            "Rank orders models by mean test top-1: a worse mean never gets a better rank. "
            "'With the best' says whether the seeds can separate a model from the most "
            "accurate one (Holm-adjusted); a model with one seed cannot be separated from "
            "anything.",
            "P(better > worse) is the share of seed pairs (one run of each model) in which the "
            "better model scores higher, ties counting half (Bouthillier et al. 2021), with a "
            "95% percentile bootstrap interval. With 2-3 seeds the interval is coarse and "
            "collapses to a point when the seeds do not overlap; it understates the "
            "uncertainty then.",
            "Test-set SE is the binomial standard error of an accuracy measured on n test "
            "images; more seeds do not shrink it, since every seed is scored on the same "
            "images. Without per-image outcomes, a gap smaller than the noise floor (1.96 × the "
            "standard error of the difference, the two models' errors taken as independent, which "
            "overstates it for similar models) is called test-set noise whatever the seeds say.",
            "Rank intervals and 'first in' come from the same bootstrap (seeds only where no per-image "
            "outcomes were saved). A ranking 'holds' under another scoring when the 95% bootstrap "
            "interval of Kendall tau lies at or above 0.6 (at most 1 pair in 5 swapped), 'changes' "
            "when it lies below, and is 'inconclusive' otherwise.",
            "Published numbers appear only beside runs that repeated the paper's experiment: "
            "its recipe unchanged, its full budget and the full training set with no "
            "validation hold-out; otherwise the report says why they are left out.",
            "MACs are multiply-accumulates counted by fvcore (which calls them 'flops'). FLOPs "
            "are forward floating-point operations from torch's FlopCounterMode, about 2 × MACs.",
            "Runs on different hardware are never averaged together: each comparison names its "
            "machine, and latency and throughput columns name their device. Runs of one model "
            "with different settings are separate rows, never averaged as seeds; the one "
            "exception is settings that differ only in data.order_seed (data order and "
            "augmentation draws), whose runs are pooled with the seeds and split again under "
            "'Sources of variance'.",
            "† after a model's name: at least one of its runs was made from a working tree with "
            "uncommitted changes (env.git_dirty), so it cannot be rebuilt from its commit; the "
            "sentence under the table says how many.",
            "Pareto (MACs): no other model is both cheaper in MACs and more accurate. MFU is "
            "achieved training FLOP/s as a share of the device's peak. Training time is the "
            "training loop's wall time, without building, profiling or measuring latency.",
            "‡ after a latency, throughput or MFU figure: it was measured under load (another job on "
            "the cores, checked from the 1-minute load average; records from before that check are "
            "judged on the load they recorded) or, for MFU, exceeds 100% against a peak measured too "
            "low. It is shown greyed, and no speed finding is drawn from it; `task=measure` on a quiet "
            "machine measures it again.",
            "Click a column header in index.html to sort the table by it.",
        ]),
    ]
    if include_synthetic:
        blocks.append(Caution("include_synthetic=true: runs on synthetic data are included. "
                              "Their accuracies measure nothing about the architectures."))
    if reference_note:
        blocks.append(Paragraph(reference_note))
    return blocks


def _excluded_section(writer, excluded, results_dir):
    blocks = [Heading("Excluded runs", 2)]
    if excluded.empty:
        return blocks + [Paragraph("None: every record found was used.")]
    blocks.append(Paragraph(
        "These records were found but not averaged into any table or figure (synthetic, failed, "
        "diverged, partial, unreadable, another schema, or a duplicate), with the reason."))
    display = excluded_table(excluded, results_dir)
    return blocks + [writer.table("excluded", "Excluded run records", display,
                                  _with_relative_paths(excluded, results_dir))]


def _with_relative_paths(frame: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    if frame.empty or "path" not in frame:
        return frame
    return frame.assign(path=[relative_path(path, results_dir) for path in frame.path])


def slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "none"


class _ReportWriter:
    """Writes the tables and figures of each comparison and returns the blocks that show them."""

    def __init__(self, report_dir: Path, runs: pd.DataFrame, reference):
        self.report_dir = report_dir
        self.reference = reference
        # Variants that differ only in data.order_seed are one model whose runs vary in seed and
        # data order (a sources-of-variance study), not separate settings.
        runs = pool_order_seeds(runs)
        self.evaluation = evaluation(runs)
        self.runs = runs = with_evaluation(runs, self.evaluation)
        self.kinds = ({study: study_kind(group) for study, group in runs.groupby("study")}
                      if not runs.empty else {})
        # Tuning trials are for selection: they are summarised in the tuning section, never
        # ranked against each other as if each candidate were a model.
        trials = runs.study.map(self.kinds).eq("tuning") if not runs.empty else pd.Series(dtype=bool)
        self.trials, compared = runs[trials], runs[~trials]
        self.summary = summarize(compared)
        self.pairs = compare(compared)
        self.ranking = rank(compared)
        self.curves = history(compared)
        self.counterparts = shared_counterparts(compared)
        self.variance = variance_sources(compared)
        self.colors = plots.family_colors(runs.family.fillna("None") if not runs.empty else [])

    def table(self, name, caption, display, raw=None, note=None, collapsed=False) -> Table:
        """A table block and its files; `note` is one sentence under it (e.g. what † means)."""
        files = write_table(self.report_dir / "tables", name, caption, display, raw, note)
        return Table(name, caption, display, files, note, collapsed)

    def figure(self, figure, stem, caption) -> list:
        if figure is None:
            return []
        png, svg = plots.save(figure, self.report_dir / "figures", stem)
        return [Figure(caption, png, svg)]

    def comparisons(self):
        """(study, data, hardware, runs) for each comparison, in report order."""
        if self.runs.empty:
            return []
        return [(*keys, group) for keys, group
                in self.runs.groupby(["study", "data", "hardware"], sort=True)]

    def study_order(self, headline=()) -> list[str]:
        """Headline studies first; each shared-recipe study followed by its tuned counterpart and that
        one's tuning trials (results before the trials that chose them); then the rest by name."""
        studies = sorted(self.runs.study.unique()) if not self.runs.empty else []
        self.headline = [study for study in headline if study in studies]
        followers: dict[str, list[str]] = {}
        for row in self.counterparts.itertuples(index=False):
            followers.setdefault(row.shared_study, []).append(row.tuned_study)
        tuned_from = self.runs.dropna(subset=["tuned_from"]).groupby("study").tuned_from.first() \
            if "tuned_from" in self.runs else pd.Series(dtype=object)
        for tuned, tuning in tuned_from.items():
            followers.setdefault(tuned, []).append(tuning)
        led = {follower for group in followers.values() for follower in group}
        order: list[str] = []

        def add(study):
            if study in studies and study not in order:
                order.append(study)
                for follower in sorted(set(followers.get(study, []))):
                    add(follower)

        shared_of = {row.tuned_study: row.shared_study for row in self.counterparts.itertuples(index=False)}
        for study in self.headline:  # a tuned headline brings its shared-recipe counterpart along too
            add(study)
            add(shared_of.get(study))
        for study in [s for s in studies if s not in led] + studies:
            add(study)
        return order

    def headline_blocks(self, study) -> list:
        """A headline comparison: its verdict, mean test top-1 with 95% intervals, and a short table."""
        blocks = []
        for comparison_study, data, hardware, group_runs in self.comparisons():
            if comparison_study != study or not (group_runs.task == "train").any():
                continue
            keys = dict(zip(GROUP_KEYS, (study, data, hardware)))
            group = _rows_matching(self.summary, keys)
            label = frame_dataset_label(group_runs, data)
            title, text = dict(self.verdicts([study]))[(study, data, hardware)]
            stem = f"headline--{slug(study)}--{slug(data)}--{slug(hardware)}"
            blocks += [Heading(f"Headline: {title}", 3), Paragraph(text)]
            blocks += self.figure(plots.headline_accuracy(group, f"{study} / {label}\n{hardware}", self.colors),
                                  stem, f"Mean test top-1 per model with its 95% interval over seeds, {label} "
                                        f"on {hardware}")
            display = headline_table(group, _device(group_runs))
            blocks.append(self.table(stem, f"{study} / {label} on {hardware}: the main columns, best mean "
                                           "first (every column: the study's section below)", display, group,
                                     _notes(summary_dirty_note(group), under_load_note(group))))
        return blocks

    def verdicts(self, order=None) -> list[tuple[tuple, tuple[str, str]]]:
        """((study, data, hardware), (title, verdict)) per comparison, studies in `order`, for the top
        of the report."""
        rank_of = {study: index for index, study in enumerate(order or [])}
        return [(keys, verdict) for keys, verdict in sorted(
            self._verdicts(), key=lambda item: rank_of.get(item[0][0], len(rank_of)))
            if order is None or keys[0] in rank_of]

    def _verdicts(self) -> list[tuple[tuple, tuple[str, str]]]:
        verdicts = []
        for study, data, hardware, group_runs in self.comparisons():
            keys = dict(zip(GROUP_KEYS, (study, data, hardware)))
            label = frame_dataset_label(group_runs, data)
            if not (group_runs.task == "train").any():
                verdicts.append(((study, data, hardware), (f"{study}, {label} on {hardware}",
                                         f"profile only: size and speed of "
                                         f"{count_text(group_runs.model.nunique(), 'model')}, no "
                                         "training, so nothing about which model learns best.")))
                continue
            if self.kinds.get(study) == "tuning":
                verdicts.append(((study, data, hardware), (f"{study}, {label} on {hardware}",
                                         " ".join(self._tuning_findings(group_runs)[:2]))))
                continue
            title, text = glance_verdict(study, label, hardware, _rows_matching(self.summary, keys),
                                         _rows_matching(self.pairs, keys),
                                         _rows_matching(self.ranking, keys))
            extra = [verdict for _shared, verdict, _gain in self._tuned_comparisons(keys, brief=True)]
            differ = _study_confounds(_rows_matching(self.runs, keys), self.kinds.get(study))
            if differ:
                extra.insert(0, f"Identical except: {', '.join(name for name, _values in differ)} (listed in the "
                                "study's recipe section).")
            variance = variance_verdict(_rows_matching(self.variance, keys))
            if variance:
                extra.append(variance)
            corruption = self._corruption_shift(keys, group_runs)
            if corruption is not None:
                extra.append(lead_in("Under corruption", ranking_verdict(corruption, "clean", "corrupted",
                                                                         brief=True)))
            verdicts.append(((study, data, hardware), (title, " ".join([text, *extra]))))
        return verdicts

    def study_section(self, study) -> list:
        study_runs = self.runs[self.runs.study == study]
        kind = self.kinds.get(study)
        blocks = [Heading(f"Study: {study}" + (" (tuning trials)" if kind == "tuning" else ""), 2)]
        blocks += _recipe_blocks(study_runs[study_runs.task == "train"],
                                 tuned=kind in ("tuning", "tuned"))
        blocks += _confound_blocks(study_runs, kind)
        for (data, hardware), group_runs in study_runs.groupby(["data", "hardware"], sort=True):
            if kind == "tuning":
                blocks += self.tuning_section(study, data, hardware, group_runs)
            else:
                blocks += self.comparison_section(study, data, hardware, group_runs)
        return blocks

    def across_studies_section(self) -> list:
        """The same models over several comparable comparisons: an aggregate with its interval and a
        performance profile, one figure per protocol (shared recipe, tuned)."""
        aggregate, profile = across_studies(self.runs)
        if aggregate.empty:
            return []
        blocks = [Heading("Across studies", 2)]
        names = {"plain": "shared recipe", "tuned": "after equal-effort tuning"}
        for protocol, rows in aggregate.groupby("protocol", sort=True):
            shown = profile[profile.protocol == protocol]
            comparisons = sorted(shown.comparison.unique())
            best = rows.iloc[0]
            blocks.append(Paragraph(
                f"{names.get(protocol, protocol).capitalize()}: {count_text(len(rows), 'model')} in all of "
                f"{', '.join(comparisons)}. Each run's test top-1 is normalised within its comparison (0 = chance, "
                "1 = the best model's mean) and summarised by the interquartile mean with a stratified bootstrap "
                f"interval (runs resampled within each comparison). Highest: {best.model}, "
                f"{best.iqm:.2f} [{best.iqm_low:.2f}, {best.iqm_high:.2f}]; "
                + "; ".join(f"{row.model} {row.iqm:.2f} [{row.iqm_low:.2f}, {row.iqm_high:.2f}]"
                            for row in rows.iloc[1:].itertuples(index=False))
                + f". With {count_text(len(comparisons), 'comparison')}, this says how consistent a ranking is "
                "across these data and budgets, not how the models rank elsewhere."))
            blocks += self.figure(plots.across_studies(rows, shown, f"Across studies, {names.get(protocol, protocol)}",
                                                       self.colors),
                                  f"across-studies--{protocol}",
                                  f"Across studies ({names.get(protocol, protocol)}): IQM of the normalised score "
                                  "with its 95% stratified bootstrap interval, and the performance profile (share "
                                  "of comparisons within a given distance of the best)")
        return blocks

    # ------------------------------------------------------------------------------ tuning

    def tuning_section(self, study, data, hardware, group_runs) -> list:
        """A tuning study: what each model's search found, never a ranking of the candidates."""
        label = frame_dataset_label(group_runs, data)
        stem = f"{slug(study)}--{slug(data)}--{slug(hardware)}"
        title = f"{study} / {label}\n{hardware}"
        keys = _tuned_keys(group_runs)
        curves = expected_best(group_runs)
        best = best_trials(group_runs)
        families = dict(zip(group_runs.model, group_runs.family))
        blocks = [Heading(f"{label} on {hardware}", 3),
                  Paragraph("Environment:"), BulletList(_environment(group_runs, data)),
                  Paragraph("These runs choose each model's recipe; they are not a comparison of "
                            "models. Findings:"),
                  BulletList(self._tuning_findings(group_runs)),
                  self.table(f"{stem}--selected", f"{study} / {label}: the trial selected per model "
                             "(best validation top-1), and the spread over its trials",
                             best_trials_table(best, group_runs, curves, keys), best,
                             runs_dirty_note(group_runs)),
                  self.table(f"{stem}--trials", f"{study} / {label}: validation top-1 of every "
                             "candidate (the same for every model); * the selected trial",
                             trials_table(group_runs, keys),
                             group_runs[["model", "trial", *keys, "val_top1", "val_loss", "path"]])]
        blocks += self.figure(plots.sensitivity(group_runs, title), f"{stem}--sensitivity",
                              f"Validation top-1 against learning rate per model, {label}; colour: "
                              "weight decay; ringed: the selected trial")
        blocks += self.figure(plots.expected_best(curves, title, families, self.colors),
                              f"{stem}--expected-best",
                              f"Expected best validation top-1 against trials per model, {label} "
                              "(Dodge et al. 2019, unbiased estimator of Tang et al. 2020); band: "
                              "± one std over trial subsets")
        return blocks

    def _tuning_findings(self, group_runs) -> list[str]:
        candidates = int(pd.to_numeric(group_runs.trials, errors="coerce").max())
        return tuning_findings(best_trials(group_runs), expected_best(group_runs), candidates)

    def _tuned_comparisons(self, keys: dict, brief: bool = False) -> list[tuple[str, str, pd.DataFrame]]:
        """(shared study, verdict, gain table) for each shared-recipe counterpart of a tuned
        comparison; `brief` for the at-a-glance list."""
        matches = _rows_matching(self.counterparts.rename(columns={"tuned_study": "study"}), keys)
        compared = []
        for shared_study in matches.shared_study:
            tuned = _rows_matching(self.runs, keys)
            shared = _rows_matching(self.runs, {**keys, "study": shared_study})
            gain = tuning_gain(shared, tuned)
            pairs = _rows_matching(self.pairs, keys).assign(
                label_a=lambda frame: frame.model_a, label_b=lambda frame: frame.model_b)
            shift = ranking_shift(gain.set_index("model").shared_mean,
                                  gain.set_index("model").tuned_mean, pairs,
                                  bootstrap_means(shared[shared.task == "train"])[0],
                                  bootstrap_means(tuned[tuned.task == "train"])[0])
            verdict = (lead_in(f"Against the shared recipe of {shared_study},",
                               ranking_verdict(shift, "shared-recipe", "tuned", brief=brief))
                       + " " + tuning_gain_sentence(gain))
            compared.append((shared_study, verdict, gain))
        return compared

    def _tuned_blocks(self, stem, keys, label, group_runs) -> list:
        sources = sorted(set(group_runs.tuned_from.dropna()))
        blocks = [Heading("Tuning", 4),
                  Paragraph(f"Each model ran with the candidate of its best trial in "
                            f"{', '.join(sources)} (best validation top-1, ties by lower "
                            "validation loss); the test set played no part in the choice.")]
        compared = self._tuned_comparisons(keys)
        if not compared:
            return blocks + [Paragraph(
                "No shared-recipe study with the same data, hardware, budget, training images "
                "and models is in this report, so the tuned ranking is not set beside a shared "
                "one.")]
        for shared_study, verdict, gain in compared:
            blocks += [Paragraph(verdict), self.table(
                f"{stem}--vs-{slug(shared_study)}",
                f"{keys['study']} / {label}: ranking under the shared recipe ({shared_study}) and "
                "after equal-effort tuning, mean test top-1 over seeds", tuning_gain_table(gain), gain)]
        return blocks

    # -------------------------------------------------------------- calibration, robustness

    def _corruption_shift(self, keys: dict, group_runs):
        group = _rows_matching(self.summary, keys)
        if group.empty or not group.mean_corruption_top1_n.gt(0).any():
            return None
        pairs = compare(group_runs, "mean_corruption_top1")
        return ranking_shift(group.set_index("label").test_top1_mean,
                             group.set_index("label").mean_corruption_top1_mean, pairs,
                             bootstrap_means(group_runs, "test_top1")[0],
                             bootstrap_means(group_runs, "mean_corruption_top1")[0])

    def _evaluation_blocks(self, stem, keys, label, group, group_runs) -> list:
        display = evaluation_table(group)
        if display.empty:
            return []
        study, hardware = keys["study"], keys["hardware"]
        evaluated = _rows_matching(self.evaluation.runs, keys)
        blocks = [Heading("Calibration and corruption robustness", 4)]
        notes = ["ECE: 15 equal-width bins of top-1 confidence, in percent; NLL in nats per "
                 "image; Brier summed over classes (0-2). 'After T': after temperature scaling "
                 "fitted on the validation split, never on test."]
        method = corruption_method_text(evaluated.corruption_method)
        if method:
            notes.append(method)
        shift = self._corruption_shift(keys, group_runs)
        if shift is not None:
            notes.append(lead_in("From clean test top-1 to mean corruption top-1,",
                                 ranking_verdict(shift, "clean", "corrupted")))
        shown = group[(group["ece_n"] > 0) | (group["mean_corruption_top1_n"] > 0)]
        blocks += [BulletList(notes), self.table(
            f"{stem}--evaluation", f"{study} / {label} on {hardware}: calibration on the test set "
            "and top-1 under corruptions, mean ± std over seeds", display, group,
            summary_dirty_note(shown))]
        return blocks

    def _evaluation_figures(self, stem, keys, label, title, families) -> list:
        bins = _rows_matching(self.evaluation.reliability, keys)
        curve = reliability_curve(bins[bins.scaling == "uncalibrated"])
        cells = _rows_matching(self.evaluation.corruptions, keys)
        group = _rows_matching(self.summary, keys)
        made = [
            (plots.reliability_diagram(curve, title, families, self.colors), "reliability",
             f"Reliability diagram (test set, before temperature scaling, seeds pooled), {label}"),
            (plots.corruption_by_severity(cells, title, families, self.colors), "corruption-severity",
             f"Top-1 by corruption severity, mean over corruptions and seeds, {label}"),
            (plots.clean_vs_corrupted(group, title, self.colors), "clean-vs-corrupted",
             f"Mean corruption top-1 against clean top-1 on the same images, {label}; bars are "
             "± std over seeds"),
        ]
        blocks = []
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        return blocks

    def comparison_section(self, study, data, hardware, group_runs) -> list:
        keys = dict(zip(GROUP_KEYS, (study, data, hardware)))
        group = _rows_matching(self.summary, keys)
        label = frame_dataset_label(group_runs, data)
        blocks = [Heading(f"{label} on {hardware}", 3),
                  Paragraph("Environment:"), BulletList(_environment(group_runs, data))]
        stem = f"{slug(study)}--{slug(data)}--{slug(hardware)}"
        device = _device(group_runs)
        if (group_runs.task == "train").any():
            blocks += self._train_blocks(stem, keys, label, group, group_runs, device)
        else:
            blocks += self._profile_blocks(stem, label, group, hardware, device)
        return blocks

    def _train_blocks(self, stem, keys, label, group, group_runs, device) -> list:
        study, hardware = keys["study"], keys["hardware"]
        pairs = _rows_matching(self.pairs, keys)
        ranking = _rows_matching(self.ranking, keys)
        on_front = pareto_front(group)
        target = group_runs.ttt_target.dropna()
        display = accuracy_table(group, ranking, on_front, device,
                                 target.iloc[0] if len(target) else None)
        blocks = [Paragraph("Findings:"),
                  BulletList(train_findings(group, pairs, ranking, on_front, hardware)),
                  self.table(f"{stem}--summary",
                             f"{study} / {label}: summary over seeds on {hardware}, best mean "
                             "first" + _pooled_text(group),
                             display, group.assign(pareto_macs=on_front),
                             _notes(summary_dirty_note(group), under_load_note(group)), collapsed=True)]
        if not pairs.empty:
            dirty = dict(zip(group.label, group.dirty_runs))
            shown = set(pairs.label_a) | set(pairs.label_b)
            blocks.append(self.table(
                f"{stem}--significance",
                f"{study} / {label} on {hardware}: every pair of models, test top-1 (paired bootstrap over "
                "seeds and test images where every run saved its per-image outcomes, else Welch t-tests over "
                "seeds with the independent test-set floor; Holm's correction over the pairs; P(better > "
                "worse) over seed pairs)",
                significance_table(pairs, dirty), pairs,
                summary_dirty_note(group[group.label.isin(shown)])))
        blocks += self._variance_blocks(stem, keys, label)
        if self.kinds.get(study) == "tuned":
            blocks += self._tuned_blocks(stem, keys, label, group_runs)
        blocks += self._evaluation_blocks(stem, keys, label, group, group_runs)
        blocks += self._published_blocks(stem, group, study, keys["data"], label)
        blocks += self._train_figures(stem, group, on_front, study, label, hardware, device)
        return blocks

    def _variance_blocks(self, stem, keys, label) -> list:
        """Sources of variance: for models whose runs cross seeds with data-order seeds, how much
        of the spread comes from weight initialisation, how much from data order."""
        variance = _rows_matching(self.variance, keys)
        if variance.empty:
            return []
        study, hardware = keys["study"], keys["hardware"]
        blocks = [Heading("Sources of variance", 4), Paragraph(
            "These runs cross weight initialisation (seed) with data order and augmentation draws "
            "(data.order_seed): each seed ran with each order seed. Per model, a two-way "
            "random-effects analysis of variance of test top-1 (statsmodels OLS and anova_lm; "
            "standard expected-mean-squares estimators for a crossed design without replication, "
            "negative estimates clipped at 0) splits the variance of one run into a part from "
            "initialisation, a part from data order, and a residual that holds their interaction "
            "and the noise that neither explains alone." + _degrees_text(variance)),
            BulletList(variance_findings(variance))]
        display = variance_table(variance)
        if display.empty:
            return blocks
        complete = variance[variance.complete.astype(bool)]
        blocks.append(self.table(
            f"{stem}--variance",
            f"{study} / {label} on {hardware}: sources of variance of test top-1 per model; total "
            "std = √(sum of the three parts), the std of one run with seed and order seed both "
            "drawn anew; shares are of the variance, not of the std",
            display, variance, dirty_note(zip(complete.label, complete.dirty_runs, complete.runs))))
        blocks += self.figure(
            plots.variance_bars(variance, f"{study} / {label}\n{hardware}"), f"{stem}--variance",
            f"Variance of one run's test top-1 per model, {label}, split into weight initialisation, "
            "data order and residual (interaction and noise); labels are shares of the variance")
        return blocks

    def _published_blocks(self, stem, group, study, data, label) -> list:
        published, notes = published_beside_measured(group, data, self.reference)
        blocks = []
        if published is not None:
            blocks.append(self.table(
                f"{stem}--published",
                f"{study} / {label}: published numbers beside measured, for models that "
                "repeated their paper's experiment", published))
        if notes:
            blocks += [Paragraph("Published numbers left out, because the runs are not the "
                                 "paper's experiment:"), BulletList(notes)]
        return blocks

    def _train_figures(self, stem, group, on_front, study, label, hardware, device) -> list:
        title = f"{study} / {label}\n{hardware}"
        colors = self.colors
        curves = _rows_matching(self.curves, {"study": study, "data": group.data.iloc[0],
                                              "hardware": hardware})
        families = dict(zip(group.label, group.family))
        made = [
            (plots.accuracy_vs(group, "macs", "MACs (M, multiply-adds)", title, colors,
                               scale=1e6, on_front=on_front),
             "acc-vs-macs", f"Test top-1 vs MACs, {label}; the dashed staircase is the "
                            "Pareto front"),
            (plots.accuracy_vs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})", title,
                               colors), "acc-vs-latency",
             _speed_caption(f"Test top-1 vs batch-1 latency, {label}", group)),
            (plots.accuracy_vs(group, "throughput_img_s", f"Throughput (img/s, {device})", title,
                               colors), "acc-vs-throughput",
             _speed_caption(f"Test top-1 vs throughput, {label}", group)),
            (plots.params_vs_accuracy(group, title, colors), "params-vs-acc",
             f"Parameters vs test top-1, {label}"),
            (plots.validation_curves(curves, "epoch", "Epoch", title, families, colors),
             "val-vs-epoch", f"Validation top-1 vs epoch (mean over seeds), {label}"),
            (plots.validation_curves(curves, "elapsed_s", "Training time (s)", title,
                                     families, colors),
             "val-vs-time", f"Validation top-1 vs training time (mean over seeds), {label}"),
            (plots.family_dots(group, title, colors), "family-dots",
             f"Test top-1 per model, grouped by family, {label}; bars are ± std over seeds, "
             "hollow dots had 1 seed"),
            (plots.accuracy_vs(group, "activations", "Activations (M, fvcore count per image)",
                               title, colors, scale=1e6), "acc-vs-activations",
             f"Test top-1 vs activations, {label}: activations track memory traffic, which MACs "
             "miss"),
        ]
        blocks = []
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        keys = {"study": study, "data": group.data.iloc[0], "hardware": hardware}
        return blocks + self._evaluation_figures(stem, keys, label, title, families)

    def _profile_blocks(self, stem, label, group, hardware, device) -> list:
        study = group.study.iloc[0]
        title = f"{study} / {label}\n{hardware}"
        blocks = [Paragraph("Findings:"), BulletList(profile_findings(group, hardware)),
                  self.table(f"{stem}--summary",
                             f"{study} / {label}: complexity and speed on {hardware} "
                             "(profile only, no training)", profile_table(group, device), group,
                             _notes(dirty_note(zip(group.model, group.dirty_runs, group.seeds)),
                                    under_load_note(group, "model")))]
        made = [
            (plots.speed_vs_macs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})",
                                 title, self.colors), "latency-vs-macs",
             _speed_caption(f"Batch-1 latency vs MACs, {label}", group)),
            (plots.speed_vs_macs(group, "throughput_img_s", f"Throughput (img/s, {device})",
                                 title, self.colors), "throughput-vs-macs",
             _speed_caption(f"Throughput vs MACs, {label}", group)),
            (plots.speed_vs(group, "activations", "Activations (M, fvcore count per image)",
                            "latency_b1_ms", f"Batch-1 latency (ms, {device})", title, self.colors),
             "latency-vs-activations", _speed_caption(f"Batch-1 latency vs activations, {label}", group)),
        ]
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        return blocks


def _degrees_text(variance: pd.DataFrame) -> str:
    """How much the variance split rests on, from the design's size: few levels, rough shares."""
    designs = {(int(row.seeds), int(row.order_seeds))
               for row in variance[variance.complete.astype(bool)].itertuples(index=False)}
    if len(designs) != 1:
        return " The F-test p says whether a factor's part can be told from zero."
    seeds, orders = designs.pop()
    return (f" With {seeds} seeds and {orders} order seeds, the initialisation part rests on "
            f"{seeds - 1} degrees of freedom, the order part on {orders - 1} and the residual on "
            f"{(seeds - 1) * (orders - 1)}, so the shares are rough; the F-test p says whether a "
            "factor's part can be told from zero.")


def _pooled_text(group: pd.DataFrame) -> str:
    """The caption's note on models whose order-seed variants were pooled as seeds; '' when none."""
    if "pooled_order_seeds" not in group:
        return ""
    pooled = group[group.pooled_order_seeds.fillna(False).astype(bool)]
    if pooled.empty:
        return ""
    return (f"; {', '.join(sorted(pooled.label))}: runs that differ in nothing but data.order_seed are "
            "pooled as one row, so Seeds counts every (seed, order seed) run; runs that share a seed or "
            "an order seed are not independent, so the 95% CI and the tests are if anything too narrow "
            "(see Sources of variance)")


def _rows_matching(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    if frame.empty:
        return frame
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        mask &= frame[key] == value
    return frame[mask]


def _device(group_runs) -> str:
    devices = group_runs.latency_device.dropna().unique()
    if len(devices) == 0:
        devices = group_runs.device.dropna().unique()
    return ", ".join(sorted(str(device) for device in devices)) or "unknown device"


def _environment(group_runs, data) -> list[str]:
    def values(column):
        present = group_runs[column].dropna() if column in group_runs else pd.Series(dtype=object)
        distinct = sorted({_plain(value) for value in present})
        text = ", ".join(distinct) if distinct else "not recorded"
        return text + (" (MIXED)" if len(distinct) > 1 else "")

    commits = group_runs.apply(
        lambda row: None if is_missing(row.git_commit) else
        f"{row.git_commit}{' (dirty)' if row.git_dirty is True else ''}", axis=1)
    commit_text = ", ".join(sorted(set(commits.dropna()))) or "not recorded"
    items = [
        f"Dataset: {frame_dataset_label(group_runs, data)} (data={data})",
        f"Device: {values('device')}; CPU: {values('cpu_model')}; "
        f"device name: {values('device_name')}",
        f"Threads: {values('threads')}; torch {values('torch')}; Python {values('python')}; "
        f"CUDA {values('cuda')}",
        f"archbench {values('archbench_version')} at commit {commit_text}; "
        f"{group_runs.hostname.nunique()} host(s)",
        f"Dataset sizes (train / val / test): {values('train_size')} / {values('val_size')} / "
        f"{values('test_size')}; {values('num_classes')} classes; image size "
        f"{values('image_size')}",
    ]
    start, end = group_runs.start_time.dropna(), group_runs.end_time.dropna()
    if len(start):
        items.append(f"Runs between {str(start.min())[:10]} and "
                     f"{str(end.max() if len(end) else start.max())[:10]}")
    return items


def _plain(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _recipe_blocks(train_runs: pd.DataFrame, tuned: bool = False) -> list:
    """The recipe and budget, stated once; a loud warning when the models did not share it.

    A study whose models each use their own paper's recipe (paper_recipes) is by design not an
    identical-budget comparison: that is said plainly, and each recipe is stated once. In a
    `tuned` study (tuning trials, or reruns of the selected trials) the tunable values differ by
    design; the rest of the recipe must still be shared.
    """
    if train_runs.empty:
        return [Paragraph("Profile-only study: complexity and latency, no training.")]
    if tuned:
        train_runs = train_runs.assign(recipe_config=[_without_tunable(text) for text
                                                      in train_runs.recipe_config])
    configs_per_name = train_runs.groupby(train_runs.recipe.fillna("unnamed"))["recipe_config"]
    names = sorted(configs_per_name.groups)
    one_config_each = all(configs.fillna("null").nunique() == 1 for _name, configs in configs_per_name)
    blocks = [Heading("Recipe and budget", 3)]
    if len(names) == 1 and one_config_each:
        blocks.append(Paragraph(
            f"As configured, identical for every model and seed in this study, apart from the tuned values "
            f"({', '.join(RECIPE_PATHS)}: see the tuning tables):" if tuned else
            "As configured, identical for every model and seed in this study (settings it leaves to each "
            "model, such as train.amp=auto, may resolve differently: see below):"))
        return blocks + [_recipe_code(train_runs.recipe_config.iloc[0])]
    if one_config_each and all(name in PAPER_RECIPES for name in names):
        blocks.append(Paragraph(
            "Each model was trained with its own paper's recipe, to compare with the published "
            "numbers; the models are therefore NOT compared with each other under an identical "
            "budget. The recipes:"))
        for name, configs in configs_per_name:
            models = ", ".join(sorted(train_runs.model[configs.index].unique()))
            blocks += [Paragraph(f"{name} (used by {models}):"), _recipe_code(configs.iloc[0])]
        return blocks
    blocks.append(Caution(
        "records in this study disagree on the training recipe or budget, so its models "
        "were NOT compared under an identical budget. " + _recipe_differences(train_runs)))
    blocks.append(Paragraph("The most common recipe:"))
    return blocks + [_recipe_code(train_runs.recipe_config.fillna("null").mode().iloc[0])]


def _study_confounds(study_runs: pd.DataFrame, kind) -> list:
    """Settings that differ between the study's models; a tuned study's tuned values differ by design."""
    ignore = tuple(f"recipe.{'.'.join(path)}" for path in RECIPE_PATHS.values()) if kind in ("tuning", "tuned") else ()
    return confounds(study_runs[study_runs.task == "train"], ignore=ignore)


def _confound_blocks(study_runs: pd.DataFrame, kind) -> list:
    """What each model actually got where the models differ beyond their architecture."""
    found = _study_confounds(study_runs, kind)
    if not found:
        return []
    return [Paragraph("Settings that differ between models (the recipe above is what was configured; these are "
                      "what each model resolved to or was built with, and any gap between models includes their "
                      "effect):"),
            BulletList([confounds_text([item]) + "." for item in found])]


def _without_tunable(config_text):
    """A recipe's JSON text without the tunable values, which a tuned study varies on purpose."""
    if not isinstance(config_text, str):
        return config_text

    def strip(node):
        if not isinstance(node, dict):
            return node
        return {key: strip(value) for key, value in node.items() if key not in RECIPE_PATHS}

    return json.dumps(strip(json.loads(config_text)), sort_keys=True)


def _tuned_keys(trials: pd.DataFrame) -> list[str]:
    """The tunable values that differ between a tuning study's candidates, e.g. ['lr', 'weight_decay']."""
    return [key for key in RECIPE_PATHS
            if key in trials and pd.to_numeric(trials[key], errors="coerce").nunique() > 1]


def _recipe_code(config_text) -> Code:
    config = json.loads(config_text) if isinstance(config_text, str) else None
    if not config:
        return Code("not recorded")
    # Unset options (null) are left out: they say nothing about how the models were trained.
    settings = {key: value for key, value in _flatten(config).items() if value != "null"}
    return Code("\n".join(f"{key}: {value}" for key, value in settings.items()))


def _recipe_differences(train_runs: pd.DataFrame) -> str:
    flat = {index: _flatten(json.loads(text) if isinstance(text, str) else None)
            for index, text in train_runs.recipe_config.items()}
    keys = sorted({key for entry in flat.values() for key in entry})
    differences = []
    for key in keys:
        by_value: dict = {}
        for index, entry in flat.items():
            by_value.setdefault(str(entry.get(key, "missing")), set()).add(
                train_runs.model[index])
        if len(by_value) > 1:
            described = "; ".join(f"{value} ({', '.join(sorted(models))})"
                                  for value, models in sorted(by_value.items()))
            differences.append(f"{key}: {described}")
    return "Differences: " + " | ".join(differences) + "."


def _flatten(mapping, prefix="") -> dict:
    if not isinstance(mapping, dict):
        return {}
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, bool, type(None))) else value
    return flat


def _notes(*notes) -> str | None:
    """The sentences under a table, joined; None when there are none."""
    present = [note for note in notes if note]
    return " ".join(present) if present else None


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


def _speed_caption(caption: str, group) -> str:
    """A speed figure's caption, saying when its figures were taken under load (no conclusion from them)."""
    loaded = int(group["latency_under_load"].notna().sum()) if "latency_under_load" in group else 0
    if not loaded:
        return caption
    return (f"{caption}. ‡ {loaded} of {len(group)} models' speed was measured under load: shown for "
            "reference only, no speed conclusion (see the note under the table)")
