"""``TrainConfig``: how the engine trains, checked field by field (unknown or bad values are refused)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional


@dataclass
class TrainConfig:
    """How to train. Invalid values raise ``ValueError`` naming the field.

    Args:
        optimizer: "adamw" or "sgd". lr, weight_decay, momentum (sgd only): its settings.
        schedule: "constant", "cosine" (decays to 0 over ``schedule_steps``, default ``max_steps``),
            "plateau" (lr divided by ``plateau_factor`` after each evaluation without improvement) or
            "epoch_decay" (Zaremba et al.: lr divided by ``decay_factor`` at the start of every epoch
            after the first ``decay_after_epochs``).
        warmup_steps: linear warm-up from 0 (all schedules).
        clip_grad_norm: clip the global gradient norm to this value (None: no clipping).
        bf16: run ``training_step`` under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
        max_steps, max_epochs, max_time (seconds, wall clock, summed over resumes): stop criteria;
            at least one is required.
        eval_every: validate, log and checkpoint every this many steps.
        early_stopping_patience: stop after this many evaluations without improvement (None: off).
        monitor: the validation metric watched for the best checkpoint (``OUT/BEST``), early stopping
            and the plateau schedule. monitor_mode: "min" (lower is better, as a loss) or "max" (accuracy).
        seed: seeds Python, NumPy and torch at the start of a fresh run.
        log_every: steps between plain progress lines (without a tqdm bar) and TensorBoard
            training-loss points.
        progress: show progress at all.
        tensorboard: also write TensorBoard scalars to ``out_dir/tensorboard`` if the ``tensorboard``
            package is installed (silently nothing otherwise; ``log.csv`` is the primary log).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    schedule_steps: Optional[int] = None
    plateau_factor: float = 2.0
    decay_after_epochs: int = 4
    decay_factor: float = 2.0
    clip_grad_norm: Optional[float] = None
    bf16: bool = False
    max_steps: Optional[int] = None
    max_epochs: Optional[int] = None
    max_time: Optional[float] = None
    eval_every: int = 100
    early_stopping_patience: Optional[int] = None
    monitor: str = "loss"
    monitor_mode: str = "min"
    seed: int = 0
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        for name, value in asdict(self).items():
            _check(name, value)
        if self.max_steps is None and self.max_epochs is None and self.max_time is None:
            raise ValueError("max_steps, max_epochs or max_time must be set (training would never stop)")
        if self.schedule == "cosine" and (self.schedule_steps or self.max_steps) is None:
            raise ValueError("schedule_steps (or max_steps) must be set for the cosine schedule")

    def lr_at(self, step: int, scale: float = 1.0, epoch: int = 0) -> float:
        """The learning rate of 1-based ``step`` in 0-based ``epoch``; ``scale`` is the plateau reduction so far."""
        factor = min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "epoch_decay":
            factor /= self.decay_factor ** max(0, epoch + 1 - self.decay_after_epochs)
        if self.schedule == "cosine" and step > self.warmup_steps:
            horizon = self.schedule_steps or self.max_steps
            progress = min(1.0, (step - self.warmup_steps) / max(1, horizon - self.warmup_steps))
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * factor * scale


# name: allowed values, or (type, minimum, minimum excluded, None allowed)
_RULES = {
    "optimizer": ("adamw", "sgd"), "schedule": ("constant", "cosine", "plateau", "epoch_decay"),
    "monitor_mode": ("min", "max"),
    "lr": (float, 0, True, False), "weight_decay": (float, 0, False, False), "momentum": (float, 0, False, False),
    "plateau_factor": (float, 1, False, False),
    "decay_factor": (float, 1, False, False), "decay_after_epochs": (int, 0, False, False), "clip_grad_norm": (float, 0, True, True),
    "max_time": (float, 0, True, True), "warmup_steps": (int, 0, False, False), "seed": (int, 0, False, False),
    "eval_every": (int, 1, False, False), "log_every": (int, 1, False, False), "max_steps": (int, 1, False, True),
    "max_epochs": (int, 1, False, True), "schedule_steps": (int, 1, False, True),
    "early_stopping_patience": (int, 1, False, True), "bf16": (bool,), "progress": (bool,), "tensorboard": (bool,),
    "monitor": (str,),
}


def _check(name: str, value) -> None:
    """Raise ValueError naming ``name`` if ``value`` breaks its rule in ``_RULES``."""
    rule = _RULES[name]
    if isinstance(rule[0], str):
        if value not in rule:
            raise ValueError(f"{name} must be one of {rule}, got {value!r}")
        return
    kind = rule[0]
    if kind in (bool, str):
        if not isinstance(value, kind) or value == "":
            raise ValueError(f"{name} must be a non-empty {kind.__name__}, got {value!r}")
        return
    _, minimum, strict, optional = rule
    if value is None and optional:
        return
    types = (int, float) if kind is float else (int,)
    ok = isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"{'>' if strict else '>='} {minimum}"
        raise ValueError(f"{name} must be a finite {kind.__name__} {bound}{' or None' if optional else ''}, "
                         f"got {value!r}")
