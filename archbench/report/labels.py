"""Names a reader sees: datasets by what they are, counts with the right plural."""
from __future__ import annotations

import math

# Dataset names live with the run tables, so the ladder shares them without importing the report package.
from archbench.results.frames import DATASET_LABELS, dataset_label, frame_dataset_label  # noqa: F401


def count_text(count, noun: str) -> str:
    """'1 seed', '3 seeds'; never '(1 seeds)'."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return f"? {noun}s"
    count = int(count)
    return f"{count} {noun}" if count == 1 else f"{count:,} {noun}s"


def word_list(words) -> str:
    """'a', 'a and b', 'a, b and c': names in a sentence."""
    words = [str(word) for word in words]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
