"""``TrainConfig``: how the engine trains, one checked field per setting (each also a flag of
``rnnkit train TASK``; see ``rnnkit.options``). Standard library only: ``--help`` never imports torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..options import Shown, check, option


LIMITS = ("max_steps", "max_epochs", "max_time")


def _clip(text: str) -> Optional[float]:
    value = float(text)
    return None if value == 0 else value            # --clip 0: no clipping


def _minutes(text: str) -> Optional[float]:
    value = float(text)
    return None if value == 0 else value            # --checkpoint-every 0: only at evaluations


@dataclass
class TrainConfig:
    """How to train. Every field checks its value (``ValueError`` naming it); at least one of
    ``max_steps``, ``max_epochs`` and ``max_time`` must be set.

    Schedules: "constant"; "cosine" decays to 0 over ``schedule_steps`` (default ``max_steps``);
    "cosine_time" decays to 0 over ``max_time`` seconds of the run's clock (the one ``max_time``
    counts: a slower or busier machine takes fewer steps, and the schedule still ends with the
    time; its learning rates depend on timings, so a resumed run is not step-for-step exact);
    "plateau" divides the lr by ``plateau_factor`` after each evaluation without improvement;
    "epoch_decay" (Zaremba et al.) divides it by ``decay_factor`` at the start of every epoch after
    the first ``decay_after_epochs``. ``warmup_steps`` ramps it up linearly from 0 under any schedule.
    ``monitor`` is the validation metric behind ``OUT/BEST``, early stopping and the plateau
    schedule (``monitor_mode`` "min" for a loss, "max" for an accuracy).
    """

    optimizer: str = option("adamw", help="optimizer", choices=("adamw", "sgd"))
    lr: float = option(1e-3, help="learning rate", above=0)
    weight_decay: float = option(0.0, help="decoupled weight decay (AdamW) or L2 penalty (SGD)", min=0)
    momentum: float = option(0.0, help="SGD momentum", min=0)
    schedule: str = option("constant", choices=("constant", "cosine", "cosine_time", "plateau", "epoch_decay"),
                           help="learning-rate schedule: cosine decays to 0 over --schedule-steps or --max-steps, "
                                "cosine_time over --max-time seconds; "
                                "plateau divides it by --plateau-factor after an evaluation without improvement; "
                                "epoch_decay divides it by --decay-factor every epoch after --decay-after-epochs")
    warmup_steps: int = option(0, help="steps of linear warm-up from 0", min=0)
    schedule_steps: Optional[int] = option(None, help="length of the cosine schedule", min=1,
                                           default_text="--max-steps")
    plateau_factor: float = option(2.0, help="lr divisor of the plateau schedule", min=1)
    decay_after_epochs: int = option(4, help="epochs at full lr before epoch_decay starts", min=0)
    decay_factor: float = option(2.0, help="lr divisor per epoch of epoch_decay", min=1)
    clip_grad_norm: Optional[float] = option(None, flag="--clip", above=0, parse=_clip, metavar="NORM",
                                             help="clip the global gradient norm to NORM; 0 turns clipping off",
                                             default_text="off")
    bf16: bool = option(False, help="train under bfloat16 autocast: fast only on CPUs with AMX or AVX-512 BF16 "
                                    "(elsewhere several times slower than float32)")
    flush_denormal: bool = option(True, help="keep IEEE denormal floats while training (by default they are "
                                             "flushed to zero, on x86 CPUs: GEMMs over denormal gradients can be "
                                             "several times slower)")
    device: str = option("cpu", help="where to train: cpu, or cuda / cuda:N where PyTorch sees a GPU")
    max_steps: Optional[int] = option(None, help="stop after this many steps", min=1)
    max_epochs: Optional[int] = option(None, help="stop after this many passes over the data", min=1)
    max_time: Optional[float] = option(None, help="stop after this many seconds of wall time, the final "
                                                   "evaluation included (summed over resumes)", above=0,
                                       metavar="SECONDS")
    eval_every: int = option(100, help="steps between evaluations (each one logs and writes a checkpoint)", min=1)
    checkpoint_every: Optional[float] = option(10.0, above=0, parse=_minutes, metavar="MINUTES",
                                               help="also write a checkpoint (no evaluation) after this many "
                                                    "minutes without one; 0 turns this off")
    early_stopping_patience: Optional[int] = option(None, help="stop after this many evaluations without "
                                                               "improvement", min=1, default_text="off")
    monitor: str = option("loss", help="validation metric that picks the best checkpoint (OUT/BEST)")
    monitor_mode: str = option("min", help="whether --monitor is better low (a loss) or high (an accuracy)",
                               choices=("min", "max"))
    seed: int = option(0, help="seeds Python, NumPy and torch at the start of a fresh run", min=0)
    log_every: int = option(10, help="steps between progress lines (without a progress bar) and TensorBoard "
                                     "training-loss points", min=1)
    progress: bool = option(True, help="show no progress and no evaluation lines")
    tensorboard: bool = option(True, help="write no TensorBoard events (written to OUT/tensorboard when the "
                                          "tensorboard package is installed)")

    def __post_init__(self):
        check(self)
        if self.max_steps is None and self.max_epochs is None and self.max_time is None:
            raise ValueError("max_steps, max_epochs or max_time must be set (training would never stop)")
        if self.schedule == "cosine" and (self.schedule_steps or self.max_steps) is None:
            raise ValueError("schedule_steps (or max_steps) must be set for the cosine schedule")
        if self.schedule == "cosine_time" and self.max_time is None:
            raise ValueError("max_time must be set for the cosine_time schedule (it decays over the time)")

    def lr_at(self, step: int, scale: float = 1.0, epoch: int = 0, elapsed: float = 0.0) -> float:
        """The learning rate of 1-based ``step`` in 0-based ``epoch``, ``elapsed`` seconds into the run
        (for "cosine_time"); ``scale`` is the plateau reduction so far."""
        factor = min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "epoch_decay":
            factor /= self.decay_factor ** max(0, epoch + 1 - self.decay_after_epochs)
        if self.schedule == "cosine" and step > self.warmup_steps:
            horizon = self.schedule_steps or self.max_steps
            progress = min(1.0, (step - self.warmup_steps) / max(1, horizon - self.warmup_steps))
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.schedule == "cosine_time":
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / self.max_time)))
        return self.lr * factor * scale


def command_line_defaults(epochs: int, **task_defaults) -> dict:
    """The defaults ``rnnkit train TASK --help`` shows: the task's own (``lr=3e-3``, ...) and the
    rules of ``command_line_config``."""
    return dict(clip_grad_norm=1.0, **task_defaults, max_epochs=Shown(f"{epochs} when no other limit is given"),
                schedule=Shown("cosine with --max-steps, else constant"),
                warmup_steps=Shown("--max-steps / 10, at most 100"))


def command_line_config(given: dict, *, epochs: int, base: Optional[dict] = None, **task_defaults) -> TrainConfig:
    """The ``TrainConfig`` of ``rnnkit train TASK``: the flags ``given``, over ``base`` (a resumed
    run's saved settings) or else the task's defaults and these rules: ``epochs`` epochs when no
    limit is given, the cosine schedule when ``max_steps`` is, warm-up for a tenth of the steps (at
    most 100), gradient clipping at 1. A resumed run given a limit (``--max-steps 5000``) stops at
    the limits given, not at the saved ones."""
    if base is not None:
        known = {key: value for key, value in base.items() if key in TrainConfig.__dataclass_fields__}
        if any(limit in given for limit in LIMITS):
            known.update(dict.fromkeys(LIMITS))
        return TrainConfig(**dict(known, **given))
    values = dict(clip_grad_norm=1.0, **task_defaults)
    values.update(given)
    if all(values.get(limit) is None for limit in LIMITS):
        values["max_epochs"] = epochs
    values.setdefault("schedule", "cosine" if values.get("max_steps") else "constant")
    values.setdefault("warmup_steps", min(100, (values.get("max_steps") or 1000) // 10))
    return TrainConfig(**values)
