"""Every `python -m archbench ...` command line in README.md runs: each as a dry run (the report for real).

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

COMMAND = re.compile(r"(?:^|`|\s)(python -m archbench(?:\.report)?(?: [^`#|\n]*)?)")


def readme_commands() -> list[str]:
    found = []
    for line in (REPO / "README.md").read_text().splitlines():
        for match in COMMAND.finditer(line):
            command = " ".join(match.group(1).split())
            if "[" not in command and command not in found:  # `[results_dir=...]` is syntax, not a command
                found.append(command)
    return found


def test_readme_has_the_commands_users_copy():
    commands = readme_commands()
    assert any(c.startswith("python -m archbench -m experiment=") for c in commands)
    assert any(c.startswith("python -m archbench.report") for c in commands)


def _only_missing_data(stdout: str) -> bool:
    problems = [row.split("|")[-2].strip() for row in stdout.splitlines() if row.startswith("| ") and
                not row.startswith("| job")]
    problems = [p for p in problems if p]
    return bool(problems) and all(p.startswith("data:") for p in problems)


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, tmp_path):
    args = shlex.split(command)[3:]
    env = {**os.environ, "PYTHONPATH": str(REPO), "ARCHBENCH_PREFLIGHT_BATCH": "2", "HYDRA_FULL_ERROR": "1"}
    if command.startswith("python -m archbench.report"):
        shutil.copytree(REPO / "tests/fixtures/records", tmp_path / "results")  # as after some runs
        out = subprocess.run([sys.executable, "-m", "archbench.report", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert not (REPO / "report").joinpath("local").exists()
        return
    args += [] if "dry_run=true" in args else ["dry_run=true"]
    out = subprocess.run([sys.executable, "-m", "archbench", *args, f"results_dir={tmp_path}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 or (out.returncode == 1 and _only_missing_data(out.stdout)), \
        out.stdout[-3000:] + out.stderr[-3000:]
    assert "estimated training time" in out.stdout or "dry run" in out.stdout + out.stderr
