"""torchrun: joining the process group, and decisions every rank takes from rank 0."""
from __future__ import annotations

import os


def rank() -> int:
    """This process's rank as torchrun sets it (0 outside torchrun): read before the group is joined."""
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: str) -> str:
    """Join the torchrun process group; returns this rank's device (cuda:<LOCAL_RANK> on GPUs)."""
    import torch

    if device.startswith("cuda"):
        # The device first, then the group bound to it: NCCL otherwise guesses a device per rank.
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        if device.startswith("cuda"):
            torch.distributed.init_process_group("nccl", device_id=torch.device(device))
        else:
            torch.distributed.init_process_group("gloo")
    return device


def from_rank_0(decision):
    """Rank 0's value of a decision every rank must share (skip/lock, precision and layout)."""
    import torch

    box = [decision]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]

