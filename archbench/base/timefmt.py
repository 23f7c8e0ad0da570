"""Durations as a person reads them: seconds below a minute, minutes below two hours, hours above."""
from __future__ import annotations


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if round(seconds) < 60:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if minutes < 10 and rest else f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
