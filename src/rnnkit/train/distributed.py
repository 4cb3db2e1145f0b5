"""Multi-process data-parallel training helpers (``torch.distributed``; the engine wraps the model in DDP).

Launch with ``torchrun --nproc_per_node=N script.py``; the script calls ``init_from_env()`` before
building its ``Trainer``. With a process group of world size > 1 the ``Trainer`` trains through
``torch.nn.parallel.DistributedDataParallel``: see ``Trainer`` for the contract on tasks and batches.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import torch.distributed as dist

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """True when a process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_from_env(backend: Optional[str] = None) -> bool:
    """Initialise the process group from torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    Does nothing when a variable is missing or the group is already initialised.
    Inputs: backend: default "nccl" if CUDA is available, else "gloo".
    Outputs: whether a process group is initialised afterwards.
    """
    if not dist.is_available():
        return False
    if not dist.is_initialized() and all(name in os.environ for name in _ENV):
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend, init_method="env://")
    return dist.is_initialized()


def shard(batch, rank: int, world: int):
    """This process's slice of a global batch: contiguous chunk ``rank`` of ``world`` along dim 0.

    Applied to every tensor (with at least one dimension) inside tuples, lists and dicts, recursively;
    anything else is returned unchanged. Equal chunks need a batch size divisible by ``world``.
    """
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            return batch
        if batch.shape[0] < world:
            raise ValueError(f"a batch of {batch.shape[0]} items cannot be split over {world} processes")
        return batch.tensor_split(world)[rank]
    if isinstance(batch, dict):
        return type(batch)((key, shard(value, rank, world)) for key, value in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):       # named tuple
        return type(batch)(*(shard(value, rank, world) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(value, rank, world) for value in batch)
    return batch
