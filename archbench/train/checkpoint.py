"""Checkpoints beside the record: written atomically, read defensively.

A corrupt checkpoint is moved aside (never deleted, never crashed on) and the run starts over, so a
broken file can cost one run's progress but never a sweep.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import torch

from archbench.record import atomic_write_bytes, move_aside

log = logging.getLogger(__name__)


def save_checkpoint(path: str | Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict | None:
    """The checkpoint at `path`, or None when absent or unreadable (then moved aside with a warning)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        # weights_only=False: the checkpoint holds RNG states and history; it is our own file.
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise ValueError("not an archbench checkpoint (missing 'model' or 'step')")
        return state
    except Exception as err:  # torch raises many types for truncated/garbled files
        moved = move_aside(path, str(err))
        log.warning("checkpoint %s is unreadable (%s: %s); moved aside to %s and starting over",
                    path, type(err).__name__, err, moved.name)
        return None
