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

from ..data.batching import map_tensors

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
    """This process's slice of a global batch: contiguous chunk ``rank`` of ``world`` of every tensor
    (with at least one dimension) in it, along its batch dimension (``rnnkit.data.map_tensors``: 0,
    or a dataclass field's ``batch_dim``, 1 for time-major (T, B) tensors); anything else unchanged.
    Equal chunks need a batch size divisible by ``world``.
    """
    def split(tensor: torch.Tensor, dim: int) -> torch.Tensor:
        if tensor.dim() == 0:
            return tensor
        if tensor.shape[dim] < world:
            raise ValueError(f"a batch of {tensor.shape[dim]} items cannot be split over {world} processes")
        return tensor.tensor_split(world, dim=dim)[rank]

    return map_tensors(batch, split)
