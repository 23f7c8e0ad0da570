"""Reading single values out of a record of any age: levels may be missing or null, numbers may be text."""
from __future__ import annotations

import math


def nested(mapping, *keys):
    """Nested lookup that tolerates missing or null levels."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def number_or_nan(value):
    """A float, or NaN for anything that is not a real number (null, missing, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def present_or(value, fallback):
    return fallback if value is None else value


def record_threads(record: dict):
    """The CPU threads the run used; records made before `env` held them have them in `latency`."""
    return present_or(nested(record, "env", "threads"), nested(record, "latency", "threads"))
