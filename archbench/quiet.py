"""Is the machine quiet enough to time a model? The 1-minute load average, waited for and watched.

Other processes on the same cores make a CPU latency or a matmul peak slower by an amount nobody can
correct afterwards, so a speed figure is only comparable when it was taken on a quiet machine. Before
each measurement `measure_quietly` waits (up to `timeout_s`) for the 1-minute load average to fall to
`max_load_per_thread` x the threads the measurement uses, records the load before, the highest seen
while measuring and after, and marks the figure `under_load` with a reason when the machine was busy.

On a GPU the question is another one: the figure is the GPU's, so it needs no other process on that GPU
(asked through a `gpu_neighbours` callable, NVML in practice) and one free host core for the thread that
launches and times the kernels, so the host's load is judged against its core count (`host_limit`).

No torch here: the report judges old records (`legacy_under_load`) with the same rule.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

log = logging.getLogger("archbench")
# Caps measure.quiet.timeout_s for every run in this environment (the test suite sets it to 0: its busy
# 2-core CI machine is never quiet, and its speed figures are not results). The figure is still judged.
MAX_WAIT_ENV = "ARCHBENCH_QUIET_MAX_WAIT_S"
# The 1-minute load average is an exponential average with a 60 s time constant (Linux).
LOAD_TIME_CONSTANT_S = 60.0


@dataclass(frozen=True)
class QuietSettings:
    # Quiet = 1-minute load at most this x the threads the measurement uses: with 1 thread on a 2-core
    # machine, 0.5 tells "only our own recent work" apart from "another job on the other core" (load >= 1).
    max_load_per_thread: float = 0.5
    # How long to wait for the load to fall before measuring anyway (the figure is then marked under_load).
    # After one wait ran out, the next measurements of the same pass do not wait until the machine was
    # found quiet again: a machine that stays busy costs one timeout per pass, not one per model.
    timeout_s: float = 120.0
    # How often the load is read while waiting and while measuring.
    poll_s: float = 2.0

    KEYS = ("max_load_per_thread", "timeout_s", "poll_s")

    @classmethod
    def from_config(cls, config: dict | None) -> "QuietSettings":
        config = dict(config or {})
        unknown = sorted(set(config) - set(cls.KEYS))
        if unknown:
            raise ValueError(f"measure.quiet.{unknown[0]} is not a quiet-check setting (known: "
                             f"{', '.join(cls.KEYS)}); see conf/measure/default.yaml")
        for key, value in config.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                    or (key == "poll_s" and not value > 0):
                raise ValueError(f"measure.quiet.{key}={value!r} must be a {'positive' if key == 'poll_s' else 'non-negative'}"
                                 " number, e.g. measure.quiet.max_load_per_thread=0.5 measure.quiet.timeout_s=180")
        settings = cls(**{k: float(v) for k, v in config.items()})
        cap = os.environ.get(MAX_WAIT_ENV)
        if cap is not None:  # a test suite on shared cores: never quiet, so waiting only costs time
            settings = replace(settings, timeout_s=min(settings.timeout_s, float(cap)))
        return settings

    def limit(self, threads: int) -> float:
        return self.max_load_per_thread * max(int(threads or 1), 1)


def host_limit(settings: QuietSettings, threads: int, on_gpu: bool = False) -> float:
    """The highest quiet 1-minute load: `settings.limit` on a CPU; on a GPU, whatever leaves the timing
    threads their cores (a 16-core GPU host after a sweep is never at 0.5, and need not be)."""
    if not on_gpu:
        return settings.limit(threads)
    return max(float((os.cpu_count() or 1) - max(int(threads or 1), 1)), settings.limit(threads))


# Other processes' ids on the GPU being measured, or None when that cannot be known (no NVML).
GpuNeighbours = Callable[[], "list[int] | None"]


def load_1m() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def wait_for_quiet(settings: QuietSettings, threads: int, loadavg: Callable[[], float | None] = load_1m,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic,
                   gpu_neighbours: GpuNeighbours | None = None) -> tuple[float | None, float]:
    """(load when measuring may start, seconds waited): returns once the load is under the limit (and, on a
    GPU, no other process uses it) or on timeout."""
    limit, start = host_limit(settings, threads, gpu_neighbours is not None), clock()
    while True:
        load = loadavg()
        waited = clock() - start
        host_quiet = load is None or load <= limit
        if (host_quiet and not (gpu_neighbours and gpu_neighbours())) or waited >= settings.timeout_s:
            return load, waited
        sleep(min(settings.poll_s, max(settings.timeout_s - waited, 0.0)))


class LoadWatch:
    """The highest 1-minute load seen while the block runs, read every `poll_s` by a sleeping thread."""

    def __init__(self, poll_s: float, loadavg: Callable[[], float | None] = load_1m):
        self.poll_s, self.loadavg = poll_s, loadavg
        self.highest: float | None = None
        self._stop = threading.Event()

    def _read(self) -> None:
        load = self.loadavg()
        if load is not None:
            self.highest = load if self.highest is None else max(self.highest, load)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._read()

    def __enter__(self) -> "LoadWatch":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()


def judge(settings: QuietSettings, threads: int, before: float | None, during: float | None,
          after: float | None, elapsed_s: float, waited_s: float,
          gpu_others: dict | None = None) -> tuple[dict, dict | None]:
    """(the `quiet` section, the `under_load` mark or None) for one measurement.

    gpu_others: on a GPU, {"before": pids or None, "after": pids or None} of other processes on it."""
    limit = host_limit(settings, threads, gpu_others is not None)
    # The measurement itself keeps `threads` cores busy, which lifts the 1-minute average by at most this.
    own = max(int(threads or 1), 1) * (1 - math.exp(-elapsed_s / LOAD_TIME_CONSTANT_S))
    cores = os.cpu_count()
    quiet = {"checked": True, "load_before": before, "load_during_max": during, "load_after": after,
             "limit": limit, "limit_while_measuring": limit + own, "threads": threads, "cpu_count": cores,
             "waited_s": round(waited_s, 1), "measure_s": round(elapsed_s, 1), "settings": asdict(settings)}
    waited = f"after waiting {waited_s:.0f} s" if settings.timeout_s > 0 else "measured without waiting"
    reasons = []
    if before is None:
        reasons.append("the load average cannot be read on this system")
    elif before > limit:
        rule = (f"{cores} cores less {_threads_text(threads)} timing the GPU" if gpu_others is not None
                else f"{settings.max_load_per_thread:g} x {_threads_text(threads)} on {cores} cores")
        reasons.append(f"1-minute load {before:.2f} before measuring, above the limit {limit:.2f} ({rule}), {waited}")
    if gpu_others is not None:
        quiet["gpu_other_processes"] = gpu_others
        if gpu_others.get("before") is None:
            quiet["gpu_note"] = "other processes on the GPU could not be read (NVML unavailable): not checked"
        busy = sorted(set(gpu_others.get("before") or []) | set(gpu_others.get("after") or []))
        if busy:
            reasons.append(f"{len(busy)} other process{'' if len(busy) == 1 else 'es'} used the GPU while measuring "
                           f"(pid {', '.join(map(str, busy))}), {waited}")
    highest = max((x for x in (during, after) if x is not None), default=None)
    if highest is not None and highest > limit + own:
        reasons.append(f"1-minute load rose to {highest:.2f} while measuring (limit {limit + own:.2f}, "
                       f"counting this measurement's own {own:.2f})")
    under = {"reason": "; ".join(reasons), "load_before": before, "load_during_max": during,
             "load_after": after} if reasons else None
    return quiet, under


def threads_left_free(default_threads: int, loadavg: Callable[[], float | None] = load_1m,
                      cores: int | None = None) -> tuple[int | None, str | None]:
    """`threads: null` on a CPU: (threads, the sentence saying why) when other work already occupies some
    cores, else (None, None) and torch's default stands.

    Busy cores are the 1-minute load, rounded; the run takes the cores left free, at least one, and never
    more than `default_threads` (torch's default, which the environment may have lowered). On 2 cores beside
    one 1-thread resnet20 training job, 1 thread trained 1.8x faster than 2 and slowed the neighbour less
    (benchmarks/shared_cores.py; figures and machine in the README)."""
    cores, load = cores or os.cpu_count() or 1, loadavg()
    if load is None:
        return None, None
    free = max(cores - int(round(load)), 1)
    if free >= default_threads:
        return None, None
    return free, (f"threads=null: 1-minute load {load:.2f} on {cores} cores, so this run takes the "
                  f"{_threads_text(free)} left free rather than {default_threads} (threads=N sets it)")


def shared_cores_note(threads: int, loadavg: Callable[[], float | None] = load_1m) -> str | None:
    """At a CPU run's start: a sentence when other work already occupies the cores it needs, else None.

    The 1-minute load counts runnable processes; above the cores left for this run's threads, the run
    will share them, train slower than alone, and its latency will be marked if the load stays."""
    cores, load = os.cpu_count() or 1, loadavg()
    threads = max(int(threads or 1), 1)
    if load is None or load <= max(cores - threads, 0) + 0.5:
        return None
    return (f"the cores are shared: 1-minute load {load:.2f} on {cores} cores before this run's "
            f"{_threads_text(threads)} start, so it trains slower than alone, and its latency will be marked "
            "under load if the machine is still busy when it is timed (task=measure re-times it in quiet)")


# Set when a wait ran out with the machine still busy; cleared by the next quiet reading (see timeout_s).
_OUT_OF_PATIENCE: list[bool] = [False]


def measure_quietly(measure: Callable[[], dict], settings: QuietSettings, threads: int,
                    loadavg: Callable[[], float | None] = load_1m,
                    sleep: Callable[[float], None] = time.sleep,
                    gpu_neighbours: GpuNeighbours | None = None) -> dict:
    """`measure()` after waiting for quiet; its dict gains `quiet` and, when busy, `under_load`.

    gpu_neighbours: for a GPU measurement, reads the other processes on that GPU (see the module doc)."""
    patient = settings if not _OUT_OF_PATIENCE[0] else QuietSettings(settings.max_load_per_thread, 0.0,
                                                                      settings.poll_s)
    if patient.timeout_s > 0:
        log.info("waiting up to %.0f s for a quiet machine before timing (%s)", patient.timeout_s,
                 "no other process on the GPU, a free host core" if gpu_neighbours else
                 f"1-minute load at most {settings.limit(threads):.2f}")
    before, waited = wait_for_quiet(patient, threads, loadavg, sleep, gpu_neighbours=gpu_neighbours)
    others_before = gpu_neighbours() if gpu_neighbours else None
    _OUT_OF_PATIENCE[0] = (before is not None and before > host_limit(settings, threads, gpu_neighbours is not None)) \
        or bool(others_before)
    if waited >= 1:
        log.info("waited %.0f s for quiet (1-minute load now %s)", waited, "unknown" if before is None else f"{before:.2f}")
    tick = time.monotonic()
    with LoadWatch(settings.poll_s, loadavg) as watch:
        result = measure()
    elapsed = time.monotonic() - tick
    after = loadavg()
    gpu_others = {"before": others_before, "after": gpu_neighbours()} if gpu_neighbours else None
    quiet, under = judge(settings, threads, before, watch.highest, after, elapsed, waited, gpu_others)
    result = {k: v for k, v in result.items() if k != "under_load"}
    result["quiet"] = quiet
    if under is not None:
        result["under_load"] = under
    return result


def legacy_under_load(section: dict | None, threads: Any = None,
                      settings: QuietSettings = QuietSettings()) -> dict | None:
    """The `under_load` mark of a figure taken before quiet checks existed, from the one load it recorded.

    Such a figure saw no wait and no watch, so it counts as under load when its recorded load (at the
    start of measuring) is above today's limit; it is `None` (no evidence of load) otherwise.
    """
    if not section or section.get("quiet"):
        return (section or {}).get("under_load")
    load = section.get("load_avg_1m")
    threads = section.get("threads") or threads or 1
    if load is None:
        return None
    limit = settings.limit(threads)
    if load > limit:
        return {"reason": f"measured at 1-minute load {load:.2f} (above {limit:.2f} for {_threads_text(threads)}) "
                          "before quiet checks existed, likely beside other jobs; re-measure with task=measure",
                "load_before": load, "legacy": True}
    return None


def is_quiet(section: dict | None) -> bool:
    """Measured with the quiet check and found quiet: task=measure skips it unless forced."""
    return bool(section and (section.get("quiet") or {}).get("checked") and not section.get("under_load"))


def _threads_text(threads) -> str:
    """'1 thread', '2 threads'."""
    return f"{threads} thread{'' if threads == 1 else 's'}"
