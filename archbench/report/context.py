"""What every section of the report reads and writes through.

`Analysis`: the runs analysed once (summaries, pairwise tests, rankings, curves, variance), so no
section computes a statistic another section also shows. `Comparison`: one study's runs on one
dataset and machine, the unit every table and figure is about. `ReportContext`: the report being
written, its inputs, and the folder sections write their tables and figures into.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from archbench import results
from archbench.results.ladder import study_list

from . import figures as plots
from .document import Figure, Table
from .labels import frame_dataset_label
from .tables import measured_elsewhere, relative_path, write_table


class Analysis:
    """Every statistic the report shows, computed once from the usable runs."""

    def __init__(self, runs: pd.DataFrame):
        # Variants that differ only in data.order_seed are one model whose runs vary in seed and
        # data order (a sources-of-variance study), not separate settings.
        runs = results.pool_order_seeds(runs)
        self.evaluation = results.evaluation(runs)
        self.runs = runs = results.with_evaluation(runs, self.evaluation)
        self.kinds = ({study: results.study_kind(group) for study, group in runs.groupby("study")}
                      if not runs.empty else {})
        # Tuning trials are for selection: they are summarised in the tuning section, never
        # ranked against each other as if each candidate were a model.
        trials = runs.study.map(self.kinds).eq("tuning") if not runs.empty else pd.Series(dtype=bool)
        self.trials, compared = runs[trials], runs[~trials]
        self.summary = results.summarize(compared)
        self.pairs = results.compare(compared)
        self.ranking = results.rank(compared)
        self.curves = results.history(compared)
        self.counterparts = results.shared_counterparts(compared)
        self.variance = results.variance_sources(compared)

    def comparisons(self, study=None) -> list[Comparison]:
        """Each comparison (of `study`, or of every study) in report order."""
        if self.runs.empty:
            return []
        return [Comparison(*keys, group, rows_matching(self.summary, dict(zip(results.GROUP_KEYS, keys))))
                for keys, group in self.runs.groupby(["study", "data", "hardware"], sort=True)
                if study is None or keys[0] == study]

    def study_order(self, headline=()) -> list[str]:
        """Headline studies first; each shared-recipe study followed by its tuned counterpart and that
        one's tuning trials (results before the trials that chose them); then the rest by name."""
        studies = sorted(self.runs.study.unique()) if not self.runs.empty else []
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
        for study in headline:  # a tuned headline brings its shared-recipe counterpart along too
            add(study)
            add(shared_of.get(study))
        for study in [s for s in studies if s not in led] + studies:
            add(study)
        return order


@dataclass(frozen=True, eq=False)
class Comparison:
    """One study's runs on one dataset and machine, and their summary (one row per model)."""
    study: str
    data: str
    hardware: str
    runs: pd.DataFrame
    summary: pd.DataFrame

    @property
    def keys(self) -> dict:
        return dict(zip(results.GROUP_KEYS, (self.study, self.data, self.hardware)))

    @property
    def trained(self) -> bool:
        return bool((self.runs.task == "train").any())

    @property
    def label(self) -> str:
        """The dataset as a reader sees it, e.g. 'CIFAR-10 (JPEG image folder)'."""
        return frame_dataset_label(self.runs, self.data)

    @property
    def stem(self) -> str:
        """The start of every table and figure file name of this comparison."""
        return f"{slug(self.study)}--{slug(self.data)}--{slug(self.hardware)}"

    @property
    def title(self) -> str:
        """The title of its figures."""
        return f"{self.study} / {self.label}\n{self.hardware}"

    @property
    def device(self) -> str:
        """The device its speed was measured on, for column headers."""
        elsewhere = measured_elsewhere(self.runs)
        if elsewhere:  # re-measured on another machine (task=measure): the header names that machine
            return "; ".join(elsewhere)
        devices = self.runs.latency_device.dropna().unique()
        if len(devices) == 0:
            devices = self.runs.device.dropna().unique()
        return ", ".join(sorted(str(device) for device in devices)) or "unknown device"

    @property
    def families(self) -> dict:
        return dict(zip(self.summary.label, self.summary.family))

    def speed_caption(self, caption: str) -> str:
        """A speed figure's caption, saying when its figures were taken under load (no conclusion
        from them)."""
        group = self.summary
        loaded = int(group["latency_under_load"].notna().sum()) if "latency_under_load" in group else 0
        if not loaded:
            return caption
        return (f"{caption}. ‡ {loaded} of {len(group)} models' speed was measured under load: shown for "
                "reference only, no speed conclusion (see the note under the table)")

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of an analysis table (pairs, ranking, variance, ...) that belong to this comparison."""
        return rows_matching(frame, self.keys)


class ReportContext:
    """The report being written: its inputs, the analysis, and the folder its files go to."""

    def __init__(self, report_dir: Path, runs: pd.DataFrame, excluded: pd.DataFrame, results_dir: Path,
                 reference, reference_note=None, command: str = "", include_synthetic: bool = False,
                 headline=(), ladders=None):
        self.report_dir = report_dir
        self.excluded, self.results_dir, self.command = excluded, results_dir, command
        self.reference, self.reference_note = reference, reference_note
        self.include_synthetic = include_synthetic
        self.loaded = runs  # as loaded, before pooling: the introduction counts them, runs.csv lists them
        self.analysis = Analysis(runs)
        self.studies = self.analysis.study_order(headline)
        self.headline = [study for study in headline if study in self.studies]
        # Budget ladders ({ladder study: its base studies}): each is shown right after its first base present.
        self.ladders = {study: bases for study, bases in (ladders or {}).items() if study in self.studies}
        for study, bases in self.ladders.items():
            present = [base for base in study_list(bases) if base in self.studies]
            if present:
                self.studies.remove(study)
                self.studies.insert(self.studies.index(present[0]) + 1, study)
        runs = self.analysis.runs
        self.colors = plots.family_colors(runs.family.fillna("None") if not runs.empty else [])

    def table(self, name, caption, display, raw=None, note=None) -> Table:
        """A table block and its files; `note` is one sentence under it (e.g. what † means)."""
        files = write_table(self.report_dir / "tables", name, caption, display, raw, note)
        return Table(name, caption, display, files, note)

    def figure(self, figure, stem, caption) -> list:
        """The block of a figure (none when there was nothing to draw), saved as PNG and SVG."""
        if figure is None:
            return []
        png, svg = plots.save(figure, self.report_dir / "figures", stem)
        return [Figure(caption, png, svg)]

    def figures(self, made, stem) -> list:
        """The blocks of several (figure, kind, caption), each saved as `<stem>--<kind>`."""
        blocks = []
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        return blocks


def rows_matching(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    if frame.empty:
        return frame
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        mask &= frame[key] == value
    return frame[mask]


def slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "none"


def notes(*sentences) -> str | None:
    """The sentences under a table, joined; None when there are none."""
    present = [sentence for sentence in sentences if sentence]
    return " ".join(present) if present else None


def with_relative_paths(frame: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """`frame` with its `path` column relative to results_dir, so a committed report names no one's
    home folder."""
    if frame.empty or "path" not in frame:
        return frame
    return frame.assign(path=[relative_path(path, results_dir) for path in frame.path])
