"""The report folder's safety: what may be replaced, and the swap that makes a build all or nothing.

A rebuild replaces only a folder that holds nothing but what the report wrote (its marker file lists
those files), so a report never deletes another output or a user's file; the new report is written
into a hidden sibling folder and swapped in only when complete.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

# Present in every report folder: names the command that made it and every file it wrote.
REPORT_MARKER = ".archbench-report"
_MANIFEST_HEADING = "Files written (a rebuild replaces this folder only if it holds no others):"
# What a report held before its marker listed its files.
_LEGACY_LAYOUT = {"README.md", "index.html", "runs.csv", "tables", "figures", REPORT_MARKER}
# The user's own runs, and a git-ignored place for their report (never the committed report/).
DEFAULT_RESULTS_DIR = "results/runs"
DEFAULT_OUT = "results/report"


class ReportInputError(ValueError):
    """Arguments that cannot make a report (unknown study, out folder that holds the records)."""


def check_replaceable(out: Path, results_dir: Path):
    """Refuse an `out` whose replacement would delete records, another report's files or a user's."""
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


def write_then_swap_in(out: Path, write):
    """Call `write(folder)` on a new hidden sibling of `out`, then put that folder in `out`'s place; a
    failed or interrupted `write` leaves `out` as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out)


def swap_in(staging: Path, out: Path):
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


def write_marker(report_dir: Path, command: str):
    """The marker file: the command that rebuilds the report, and every file it wrote."""
    written = sorted(path.relative_to(report_dir).as_posix() for path in report_dir.rglob("*")
                     if path.is_file())
    (report_dir / REPORT_MARKER).write_text(
        f"Generated by archbench.report; regenerate with:\n{command}\n{_MANIFEST_HEADING}\n"
        + "".join(f"{path}\n" for path in written), encoding="utf-8")
