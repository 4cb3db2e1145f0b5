"""Where a model and its batches live: ``--device cpu`` (the default) or a GPU where PyTorch sees one."""

from __future__ import annotations

import torch

from ..data.batching import map_tensors
from ..options import ConfigError


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` called ``name``, refused with a ConfigError (field ``device``) when it is
    not a device name or PyTorch cannot use it on this machine."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError("device", f"device must be cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"device {name!r}: PyTorch sees no GPU on this machine "
                                    f"(torch.cuda.is_available() is False); use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError("device", f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", f"device {name!r}: rnnkit trains on cpu or cuda")
    return device


def to_device(batch, device: torch.device):
    """``batch`` with every tensor in it moved to ``device`` (``rnnkit.data.map_tensors``)."""
    return map_tensors(batch, lambda tensor, dim: tensor.to(device, non_blocking=True))
