"""Checkpoints beside the record: written atomically, read defensively, never executing code.

A corrupt checkpoint is moved aside (never deleted, never crashed on) and the run starts over, so a
broken file can cost one run's progress but never a sweep. A checkpoint of another run identity is moved
aside too: resuming it would mix two recipes in one record.
"""
from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import torch

from archbench.base.files import atomic_write_bytes, move_aside

log = logging.getLogger(__name__)


class CheckpointRefused(ValueError):
    """A checkpoint that holds more than tensors and plain values: loading it could run code."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, identity: str | None = None) -> dict | None:
    """The checkpoint at `path` when it belongs to run `identity`; None when absent, unreadable or foreign.

    Loaded with weights_only=True: tensors, numbers, strings, lists and dicts only (all that model,
    optimizer, RNG and progress states hold), so a file copied in from a shared folder cannot run code.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):  # a class or function to import: code, not data
            raise CheckpointRefused(
                f"checkpoint {path} holds objects other than tensors and plain values, and archbench never "
                f"unpickles code from a file ({str(err).splitlines()[0]}); delete it, or rerun with force=true "
                "to start the run over") from err
        state = err
    except Exception as err:  # torch raises many types for truncated/garbled files
        state = err
    if not isinstance(state, Exception) and not (isinstance(state, dict) and "model" in state and "step" in state):
        state = ValueError("not an archbench checkpoint (missing 'model' or 'step')")
    if isinstance(state, Exception):
        moved = move_aside(path, str(state))
        log.warning("checkpoint %s is unreadable (%s: %s); moved aside to %s and starting over",
                    path, type(state).__name__, state, moved.name)
        return None
    if identity is not None and state.get("identity") != identity:
        moved = move_aside(path, "other identity")
        log.warning("checkpoint %s belongs to another run identity (%s, this run is %s); moved aside to %s "
                    "and starting over", path, state.get("identity"), identity, moved.name)
        return None
    return state


def _peek(path: str | Path, identity: str | None) -> dict | None:
    """The checkpoint of run `identity` at `path`, read without moving anything; None when there is none."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(state, dict) or (identity is not None and state.get("identity") != identity):
        return None
    return state


def checkpoint_numerics(path: str | Path, identity: str | None) -> dict | None:
    """{"amp", "channels_last"} a checkpoint of run `identity` trained in; None when there is none (or it
    predates the key). A resume keeps them, whichever machine it runs on."""
    return (_peek(path, identity) or {}).get("numerics")


def load_checkpoint_info(path: str | Path, identity: str | None) -> int | None:
    """The step a checkpoint of run `identity` would resume at, without moving anything (for dry runs)."""
    return (_peek(path, identity) or {}).get("step")
