"""Every `archbench ...` command line in README.md runs: each as a dry run (the report for real).

A command that needs a dataset this machine lacks still has to get as far as saying which files are
missing and how to get them; any other problem fails the test.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import REPO

# `archbench ...` / `archbench-report ...` at the start of a code line or inside backticks.
COMMAND = re.compile(r"(?:^    |`)(archbench(?:-report)?(?: [^`#|&\n]*)?)", re.MULTILINE)


def readme_commands() -> list[str]:
    found = []
    for line in (REPO / "README.md").read_text().splitlines():
        for match in COMMAND.finditer(line.replace("&& archbench", "\n    archbench")):
            command = " ".join(match.group(1).split())
            if "..." not in command and command not in found:  # `results_dir=...` is syntax, not a command
                found.append(command)
    return found


def test_readme_has_the_commands_users_copy():
    commands = readme_commands()
    assert any(c.startswith("archbench -m experiment=") for c in commands)
    assert any(c.startswith("archbench-report") for c in commands)


def _acceptable(problem: str | None) -> bool:
    """No problem, or only one this machine cannot fix: a dataset to download, or stage 1 not yet run."""
    if not problem:
        return True
    return all(part.strip().startswith(("data:", "tuned_from=")) for part in problem.split("; "))


def _reference_and_its_rerun(results, args):
    """For `compare results/reference results --study S`: the committed reference records of S,
    and their seed 0 under results/runs, standing in for the README's rerun of that study."""
    study = args[args.index("--study") + 1] if "--study" in args else "demo"
    for path in (REPO / "results/reference/runs" / study).glob("*/*/*/seed*/record.json"):
        relative = path.relative_to(REPO / "results")
        copies = [results / relative] + ([results / relative.relative_to("reference")]
                                         if path.parent.name == "seed0" else [])
        for copy in copies:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, tmp_path, tmp_path_factory, monkeypatch):
    args = shlex.split(command)[1:]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    if command.startswith("archbench-report"):
        shutil.copytree(REPO / "tests/fixtures/records", tmp_path / "results")  # as after some runs
        if args[:1] == ["compare"]:
            _reference_and_its_rerun(tmp_path / "results", args)
        out = subprocess.run([sys.executable, "-m", "archbench.report", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert not (REPO / "report").joinpath("local").exists()
        return
    if "--help" in args:
        out = subprocess.run([sys.executable, "-m", "archbench", *args], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0 and "archbench: train and measure" in out.stdout
        return
    # In-process dry run of every job the command would launch (seeds share a plan): what
    # `archbench ... dry_run=true` does, without an interpreter start per command.
    from archbench.__main__ import check_group_choices, local_dry_run
    from test_preflight import jobs_of, plan

    monkeypatch.setenv("ARCHBENCH_PREFLIGHT_BATCH", "2")
    args = [a for a in local_dry_run([a for a in args if a != "-m"] + ["dry_run=true"]) if a != "dry_run=true"]
    assert check_group_choices(args) is None
    experiment = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    jobs = jobs_of(experiment) if experiment else [[]]
    results_dir = tmp_path_factory.getbasetemp() / "empty-results"
    for job in jobs:
        row = plan(job + [a for a in args if not a.startswith("experiment=")], results_dir)
        assert _acceptable(row["problem"]), (command, job, row)
    assert not results_dir.exists(), "a dry run wrote under results_dir"
