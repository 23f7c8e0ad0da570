"""One section per study: its recipe, the settings its models differ in, then each comparison (one
dataset on one machine), laid out by what the study did: trained, tuned, tuning trials or profiled."""
from __future__ import annotations

import pandas as pd

from ..document import BulletList, Heading, Paragraph
from ..labels import count_text, frame_dataset_label
from ..tables import is_missing
from . import evaluation, ladder, profile, published, recipe, time_to_target, training, tuned, tuning, variance


def section(context) -> list:
    blocks = []
    for study in context.studies:
        blocks += study_blocks(context, study)
    return blocks


def study_blocks(context, study) -> list:
    runs = context.analysis.runs
    study_runs = runs[runs.study == study]
    if study in context.ladders:
        return ladder.blocks(context, study)
    kind = context.analysis.kinds.get(study)
    blocks = [Heading(f"Study: {study}" + (" (tuning trials)" if kind == "tuning" else ""), 2)]
    blocks += recipe.blocks(study_runs[study_runs.task == "train"], tuned=kind in ("tuning", "tuned"))
    blocks += recipe.confound_blocks(study_runs, kind)
    for comparison in context.analysis.comparisons(study):
        blocks += comparison_blocks(context, comparison, kind)
    return blocks


def comparison_blocks(context, comparison, kind) -> list:
    blocks = [Heading(f"{comparison.label} on {comparison.hardware}", 3),
              Paragraph("Environment:"), BulletList(environment(comparison.runs, comparison.data))]
    if kind == "tuning":
        return blocks + tuning.blocks(context, comparison)
    if not comparison.trained:
        return blocks + profile.blocks(context, comparison)
    return (blocks
            + training.blocks(context, comparison)
            + time_to_target.blocks(context, comparison)
            + variance.blocks(context, comparison)
            + (tuned.blocks(context, comparison) if kind == "tuned" else [])
            + evaluation.blocks(context, comparison)
            + published.blocks(context, comparison)
            + training.figures(context, comparison)
            + evaluation.figures(context, comparison))


def environment(group_runs: pd.DataFrame, data) -> list[str]:
    """Where and with what the runs were made: dataset, device, threads, versions, commit, dates."""
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
        f"{count_text(group_runs.hostname.nunique(), 'host')}",
        f"Dataset sizes (train / val / test): {values('train_size')} / {values('val_size')} / "
        f"{values('test_size')}; {values('num_classes')} classes; image size "
        f"{values('image_size')}",
    ]
    items += machine_items(group_runs)
    start, end = group_runs.start_time.dropna(), group_runs.end_time.dropna()
    if len(start):
        items.append(f"Runs between {str(start.min())[:10]} and "
                     f"{str(end.max() if len(end) else start.max())[:10]}")
    return items


def machine_items(group_runs: pd.DataFrame) -> list[str]:
    """A comparison pooled across machines (archbench.results.pooling): each machine with its seeds and
    commits, whose speed the tables show, and the machine-effect check; nothing for one machine."""
    items = []
    machines = group_runs["trained_on"].dropna().unique() if "trained_on" in group_runs else []
    if len(machines) > 1:
        parts = []
        for machine in sorted(machines):
            runs = group_runs[group_runs.trained_on == machine]
            seeds = ", ".join(_plain(seed) for seed in sorted(runs.seed.dropna().unique()))
            commits = ", ".join(sorted({str(commit)[:7] for commit in runs.git_commit.dropna()})) or "not recorded"
            parts.append(f"{machine}: {count_text(len(runs), 'run')} (seeds {seeds}; commits {commits})")
        speed = group_runs["speed_machine"].dropna()
        items.append(f"Trained on {len(machines)} machines, accuracy pooled at one numerics identity; speed, "
                     f"time and memory are {speed.iloc[0] if len(speed) else 'one machine'}'s only: "
                     + "; ".join(parts))
    checks = group_runs["machine_check"].dropna().unique() if "machine_check" in group_runs else []
    if len(checks):
        items.append(f"Machine check: {checks[0]}")
    return items


def _plain(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
