"""Build the report folder from run records: README.md, index.html, tables/, figures/, runs.csv.

The new report is written into a hidden sibling folder and swapped in only when complete, so an
interrupted or failed build leaves the previous report as it was.
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
    compare,
    history,
    load_with_exclusions,
    pareto_front,
    rank,
    summarize,
)

from . import figures as plots
from .document import (
    BulletList,
    Caution,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from .findings import profile_findings, train_findings
from .reference import PAPER_RECIPES, load_reference, published_beside_measured
from .tables import (
    accuracy_table,
    excluded_table,
    is_missing,
    relative_path,
    profile_table,
    significance_table,
    write_table,
)

# Present in every report folder: only a folder carrying it may be replaced wholesale.
REPORT_MARKER = ".archbench-report"
TITLE = "archbench report"


class ReportInputError(ValueError):
    """Arguments that cannot make a report (unknown study, out folder that holds the records)."""


def build_report(results_dir="results", out="report", study=None, include_synthetic=False,
                 reference=None) -> Path:
    """Regenerate `out` from every record.json under `results_dir`; return the report folder.

    `study` limits the report to one study (or a comma-separated list). `reference` is the
    published-numbers table; by default it is read from archbench/models/reference.csv.
    """
    results_dir, out = Path(results_dir), Path(out)
    _check_replaceable(out, results_dir)
    runs, excluded = load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    if runs.empty and excluded.empty:
        raise FileNotFoundError(
            f"no {RECORD_FILENAME} under results_dir={str(results_dir)!r}: run a study first, "
            "or point results_dir at the folder that holds runs/")
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
                     include_synthetic)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, out)
    return out


def _check_replaceable(out: Path, results_dir: Path):
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out={str(out)!r} is a file: pass a folder for the report")
    resolved_out, resolved_results = out.resolve(), results_dir.resolve()
    if resolved_results == resolved_out or resolved_out in resolved_results.parents:
        raise ReportInputError(f"out={str(out)!r} contains results_dir={str(results_dir)!r}; "
                               "replacing it would delete the records: pass another out folder")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_MARKER).exists():
        raise FileExistsError(
            f"out={str(out)!r} exists and is not an archbench report (no {REPORT_MARKER} file), "
            "so it will not be replaced: pass a new or empty folder")


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
                 reference_note, command: str, include_synthetic: bool = False):
    """Write every report file into `report_dir` (an empty folder)."""
    writer = _ReportWriter(report_dir, runs, reference)
    blocks = _introduction(runs, excluded, results_dir, command, reference_note,
                           include_synthetic)
    studies = sorted(runs.study.unique()) if not runs.empty else []
    for study in studies:
        blocks += writer.study_section(study)
    blocks += _excluded_section(writer, excluded, results_dir)

    (report_dir / "README.md").write_text(render_markdown(blocks), encoding="utf-8")
    (report_dir / "index.html").write_text(render_html(blocks, report_dir, TITLE),
                                           encoding="utf-8")
    # Paths relative to results_dir, so the committed report names no one's home folder.
    _with_relative_paths(runs, results_dir).to_csv(report_dir / "runs.csv", index=False)
    (report_dir / REPORT_MARKER).write_text(
        f"Generated by archbench.report; regenerate with:\n{command}\n", encoding="utf-8")


def _introduction(runs, excluded, results_dir, command, reference_note, include_synthetic):
    blocks = [
        Heading(TITLE, 1),
        Paragraph(f"Generated from {len(runs)} usable run records under {results_dir}; "
                  f"{len(excluded)} records were excluded and are listed under 'Excluded runs'. "
                  "This file is generated: regenerate it rather than editing it, with:"),
        Code(command),
        Heading("How to read this report", 2),
        BulletList([
            "Accuracies are percentages. 'mean ± std' is over seeds (sample standard "
            "deviation); '95% CI' is the Student-t half-width of the mean. One seed has an "
            "unknown spread, shown as '—'.",
            "MACs are multiply-accumulates counted by fvcore (which calls them 'flops'). FLOPs "
            "are forward floating-point operations from torch's FlopCounterMode, about 2 × MACs.",
            "Runs on different hardware are never averaged together: each comparison names its "
            "machine, and latency and throughput columns name their device.",
            "Rank is 1 + the number of models significantly better (pairwise Welch t-test over "
            "seeds, p < 0.05); '(tie)' marks a model the seeds cannot separate from at least one "
            "other. Models with fewer than two seeds are tied with everything.",
            "Pareto (MACs): no other model is both cheaper in MACs and more accurate. MFU is "
            "achieved training FLOP/s as a share of the device's peak.",
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
        self.runs = runs
        self.reference = reference
        self.summary = summarize(runs)
        self.pairs = compare(runs)
        self.ranking = rank(runs)
        self.curves = history(runs)
        self.colors = plots.family_colors(runs.family.fillna("None") if not runs.empty else [])

    def table(self, name, caption, display, raw=None) -> Table:
        files = write_table(self.report_dir / "tables", name, caption, display, raw)
        return Table(name, caption, display, files)

    def figure(self, figure, stem, caption) -> list:
        if figure is None:
            return []
        png, svg = plots.save(figure, self.report_dir / "figures", stem)
        return [Figure(caption, png, svg)]

    def study_section(self, study) -> list:
        study_runs = self.runs[self.runs.study == study]
        blocks = [Heading(f"Study: {study}", 2)]
        blocks += _recipe_blocks(study_runs[study_runs.task == "train"])
        for (data, hardware), group_runs in study_runs.groupby(["data", "hardware"], sort=True):
            blocks += self.comparison_section(study, data, hardware, group_runs)
        return blocks

    def comparison_section(self, study, data, hardware, group_runs) -> list:
        keys = dict(zip(GROUP_KEYS, (study, data, hardware)))
        group = _rows_matching(self.summary, keys)
        blocks = [Heading(f"{data} on {hardware}", 3),
                  Paragraph("Environment:"), BulletList(_environment(group_runs))]
        stem = f"{slug(study)}--{slug(data)}--{slug(hardware)}"
        device = _device(group_runs)
        if (group_runs.task == "train").any():
            blocks += self._train_blocks(stem, keys, group, group_runs, device)
        else:
            blocks += self._profile_blocks(stem, group, hardware, device)
        return blocks

    def _train_blocks(self, stem, keys, group, group_runs, device) -> list:
        study, data, hardware = keys["study"], keys["data"], keys["hardware"]
        pairs = _rows_matching(self.pairs, keys)
        ranking = _rows_matching(self.ranking, keys)
        on_front = pareto_front(group)
        target = group_runs.ttt_target.dropna()
        display = accuracy_table(group, ranking, on_front, device,
                                 target.iloc[0] if len(target) else None)
        blocks = [Paragraph("Findings:"),
                  BulletList(train_findings(group, pairs, on_front, hardware)),
                  self.table(f"{stem}--summary",
                             f"{study} / {data}: summary over seeds on {hardware}",
                             display, group.assign(pareto_macs=on_front))]
        if not pairs.empty:
            blocks.append(self.table(
                f"{stem}--significance",
                f"{study} / {data} on {hardware}: pairwise Welch t-tests of test top-1",
                significance_table(pairs), pairs))
        blocks += self._published_blocks(stem, group, study, data)
        blocks += self._train_figures(stem, group, on_front, study, data, hardware, device)
        return blocks

    def _published_blocks(self, stem, group, study, data) -> list:
        published = published_beside_measured(group, data, self.reference)
        if published is None:
            return []
        return [self.table(f"{stem}--published",
                           f"{study} / {data}: published numbers beside measured, for models "
                           "trained with their paper's recipe", published)]

    def _train_figures(self, stem, group, on_front, study, data, hardware, device) -> list:
        title = f"{study} / {data}\n{hardware}"
        colors = self.colors
        curves = _rows_matching(self.curves, {"study": study, "data": data, "hardware": hardware})
        families = dict(zip(group.model, group.family))
        made = [
            (plots.accuracy_vs(group, "macs", "MACs (M, multiply-adds)", title, colors,
                               scale=1e6, on_front=on_front),
             "acc-vs-macs", "Test top-1 vs MACs; the dashed line is the Pareto front"),
            (plots.accuracy_vs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})", title,
                               colors), "acc-vs-latency", "Test top-1 vs batch-1 latency"),
            (plots.accuracy_vs(group, "throughput_img_s", f"Throughput (img/s, {device})", title,
                               colors), "acc-vs-throughput", "Test top-1 vs throughput"),
            (plots.params_vs_accuracy(group, title, colors), "params-vs-acc",
             "Parameters vs test top-1"),
            (plots.validation_curves(curves, "epoch", "Epoch", title, families, colors),
             "val-vs-epoch", "Validation top-1 vs epoch (mean over seeds)"),
            (plots.validation_curves(curves, "elapsed_s", "Training wall time (s)", title,
                                     families, colors),
             "val-vs-time", "Validation top-1 vs training wall time (mean over seeds)"),
            (plots.family_bars(group, title, colors), "family-bars",
             "Test top-1 per model, grouped by family; error bars are std over seeds"),
        ]
        blocks = []
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        return blocks

    def _profile_blocks(self, stem, group, hardware, device) -> list:
        study, data = group.study.iloc[0], group.data.iloc[0]
        title = f"{study} / {data}\n{hardware}"
        blocks = [Paragraph("Findings:"), BulletList(profile_findings(group, hardware)),
                  self.table(f"{stem}--summary",
                             f"{study} / {data}: complexity and speed on {hardware} "
                             "(profile only, no training)", profile_table(group, device), group)]
        made = [
            (plots.speed_vs_macs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})",
                                 title, self.colors), "latency-vs-macs",
             "Batch-1 latency vs MACs"),
            (plots.speed_vs_macs(group, "throughput_img_s", f"Throughput (img/s, {device})",
                                 title, self.colors), "throughput-vs-macs",
             "Throughput vs MACs"),
        ]
        for figure, kind, caption in made:
            blocks += self.figure(figure, f"{stem}--{kind}", caption)
        return blocks


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


def _environment(group_runs) -> list[str]:
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


def _recipe_blocks(train_runs: pd.DataFrame) -> list:
    """The recipe and budget, stated once; a loud warning when the models did not share it.

    A study whose models each use their own paper's recipe (paper_recipes) is by design not an
    identical-budget comparison: that is said plainly, and each recipe is stated once.
    """
    if train_runs.empty:
        return [Paragraph("Profile-only study: complexity and latency, no training.")]
    configs_per_name = train_runs.groupby(train_runs.recipe.fillna("unnamed"))["recipe_config"]
    names = sorted(configs_per_name.groups)
    one_config_each = all(configs.fillna("null").nunique() == 1 for _name, configs in configs_per_name)
    blocks = [Heading("Recipe and budget", 3)]
    if len(names) == 1 and one_config_each:
        blocks.append(Paragraph("Identical for every model and seed in this study:"))
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
