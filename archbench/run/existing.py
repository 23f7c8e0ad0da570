"""The record already on disk: the run's lock, a finished record to skip to, other variants to mention."""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from pathlib import Path

from archbench.base.files import exclusive_lock
from archbench.record import (FINISHED, RECORD_FILE, CorruptFileError, load_record, read_record, record_hardware,
                              record_path)
from archbench.run.spec import RunSpec
from archbench.settings import differences

log = logging.getLogger("archbench")


@contextlib.contextmanager
def run_lock(folder: Path, policy: str):
    """An exclusive lock on `<run folder>/.lock`: two sweeps never train the same record at once."""
    with exclusive_lock(folder / ".lock", wait=policy == "wait") as held:
        yield held


def finished_record(spec: RunSpec) -> dict | None:
    """The existing finished record of exactly this run, if any (a corrupt one is moved aside and reported)."""
    try:
        record = read_record(record_path(spec.record_dir))
    except CorruptFileError as err:
        log.warning("%s", err)
        return None
    if not record or record.get("status") not in FINISHED:
        return None
    if (record.get("identity") or {}).get("fingerprint") != spec.fingerprint:
        log.warning("%s holds a record of another identity; it is not reused (force=true replaces it)",
                    spec.record_dir)
        return None
    return record


def note_other_variants(spec: RunSpec) -> None:
    """Say how this run differs from the other settings already recorded for the same model and seed."""
    model_dir = spec.record_dir.parent.parent
    for other in sorted(model_dir.glob(f"*/seed{spec.seed}/{RECORD_FILE}")):
        if other.parent == spec.record_dir:
            continue
        with contextlib.suppress(OSError, CorruptFileError):
            settings = ((read_record(other) or {}).get("identity") or {}).get("settings")
            if settings:
                diff = differences(settings, spec.identity)
                if any(d.startswith("data.content:") for d in diff):
                    log.info("the data changed since the record at %s was made: files under data.root=%s were "
                             "added, removed or rewritten, so this run is a new variant (%s), not a skip",
                             other.parent.parent.name, spec.data.load.get("root"), spec.variant)
                    diff = [d for d in diff if not d.startswith("data.content:")]
                    if not diff:
                        continue
                log.info("a record of other settings exists at %s; this run is a separate variant (%s): %s",
                         other.parent.parent.name, spec.variant, "; ".join(diff[:6]) or "no difference")


def other_machines_note(spec: RunSpec, machine: str) -> str | None:
    """A warning when the study's finished runs on this data were all made on other machines than `machine`.

    The report compares runs of one study, data and machine (`results.GROUP_KEYS`): accuracy and speed are
    never pooled across machines. So a seed added from another machine class does not join the existing
    comparison; it starts a comparison of its own, which the user should know before spending the time.
    """
    study_dir = Path(spec.results_dir) / "runs" / spec.study / spec.dataset_name
    machines = Counter()
    for path in study_dir.glob(f"*/*/seed*/{RECORD_FILE}"):
        record, _ = load_record(path)
        if record and record.get("status") in FINISHED and record.get("task") == spec.identity["task"]:
            machines[record_hardware(record)] += 1
    if not machines or machine in machines:
        return None
    made_on = "; ".join(f"{n} on {label}" for label, n in sorted(machines.items()))
    return (f"study {spec.study} on {spec.dataset_name} already has {sum(machines.values())} finished run(s), none "
            f"on this hardware ({made_on}); this run's is {machine}, so its runs form a separate comparison in "
            f"the report (accuracy and speed are never pooled across machines or thread counts). To add seeds to "
            f"the existing comparison, run on that hardware; for a comparison of this machine's own, run every "
            f"model and seed here (a new study name or results_dir keeps the two apart)")
