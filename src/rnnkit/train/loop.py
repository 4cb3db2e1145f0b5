"""The training engine shared by every task: a seeded, resumable loop around a small ``Task`` protocol.

``Trainer(task, TrainConfig(...), out_dir).fit(train_batches, valid_batches)`` runs the loop:
every ``eval_every`` steps (and at the end) it validates, appends a row to ``out_dir/log.csv`` and
writes a checkpoint holding everything needed to continue *exactly* (``fit(..., resume=True)``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol

import numpy as np
import torch

from . import distributed
from .checkpoint import CheckpointError, find_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig

try:  # optional: a progress bar when available
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None

LOG = "log.csv"


class Task(Protocol):
    """What the engine needs from a task (language modelling, classification, forecasting, ...).

    Distributed (DDP) training: during ``training_step`` ``self.model`` is the DDP wrapper, so the
    forward pass must be one call ``self.model(...)`` (``self.model["lstm"]`` fails; a forward through
    other references to the submodules bypasses gradient synchronisation and is refused). The loss
    should be a mean over items (mean of the shards' losses = global batch's loss), and every
    parameter must get a gradient in every step. ``validation_step`` sees the plain module.
    """

    model: torch.nn.Module

    def training_step(self, batch) -> torch.Tensor: """The scalar loss of one batch."""

    def validation_step(self, batch) -> dict: """Metrics of one batch (the engine averages them)."""

    def config(self) -> dict: """JSON describing model/vocabulary; saved in checkpoints, checked on resume."""

    # Optional: ``state_dict() -> dict`` and ``load_state_dict(dict)`` for state a task carries
    # between batches (a language model's hidden state across truncated-BPTT windows); the engine
    # saves it in every checkpoint and restores it on resume.
    # Optional: ``param_groups() -> list of dicts`` (torch optimizer groups; an ``"lr_scale"`` key
    # multiplies the scheduled lr of that group: discriminative learning rates), and
    # ``start_epoch(epoch)``, called before each epoch's batches, also when a resumed run continues
    # mid-epoch (gradual unfreezing: set ``requires_grad`` there; frozen parameters get no update).


@dataclass
class TrainResult:
    """What ``fit`` returns.

    Outputs:
        steps, epochs: counters at the end (epochs = completed epochs).
        best: the best value of the monitored metric; metrics: the last validation metrics.
        stopped_because: "max_steps", "max_epochs", "max_time" or "early_stopping".
        checkpoint: the last checkpoint's directory (None without ``out_dir``).
        losses: ``{step: training loss}`` of the steps run by this call.
    """

    steps: int
    epochs: int
    best: float
    metrics: dict
    stopped_because: str
    checkpoint: Optional[Path]
    losses: dict = field(default_factory=dict)


class Trainer:
    """Train ``task.model`` with ``config``; checkpoints and ``log.csv`` go to ``out_dir`` (if given),
    and TensorBoard scalars to ``out_dir/tensorboard`` where the package is installed.

    Args:
        task: a ``Task``. Build its model after seeding if the initial weights must be reproducible.
        config: a ``TrainConfig``.
        out_dir: the run directory; None keeps nothing on disk (and cannot resume).

    Data-parallel: with a ``torch.distributed`` group of world size > 1 (``distributed.init_from_env``
    under torchrun) ``fit`` trains through ``DistributedDataParallel``. Every process calls ``fit``
    with the same arguments; ``train_batches(epoch)`` yields the same GLOBAL batches everywhere and
    ``training_step`` gets this rank's contiguous chunk along dim 0 of every tensor in them
    (``distributed.shard``; a batch size divisible by the world size gives equal shards). Every rank
    validates on all of ``valid_batches()`` and loads the checkpoint on resume; only rank 0 shows
    progress and writes ``log.csv``/checkpoints. Logged training losses are means over ranks.
    """

    def __init__(self, task: Task, config: TrainConfig, out_dir: Optional[Path] = None):
        self.task, self.config = task, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if config.bf16 and cpu_has_native_bf16() is False:
            warnings.warn("bf16=True on a CPU without bf16 matrix instructions (AVX-512 BF16, AMX): autocast "
                          "will be slower than float32 here; leave bf16 off", stacklevel=2)
        params = task.param_groups() if hasattr(task, "param_groups") else task.model.parameters()
        self.optimizer = _make_optimizer(params, config)
        self._ddp, self._main = None, True
        self._tensorboard = _TensorBoard(None, config)
        worst = math.inf if config.monitor_mode == "min" else -math.inf
        self.state = dict(step=0, epoch=0, position=0, best=worst, bad_evals=0, loss_sum=0.0,
                          loss_count=0, elapsed=0.0, plateau_scale=1.0, metrics={})

    # --- the loop ---------------------------------------------------------------------------

    def fit(self, train_batches: Callable[[int], Iterable],
            valid_batches: Optional[Callable[[], Iterable]] = None, *, resume: bool = False) -> TrainResult:
        """Train until a stop criterion; validate/log/checkpoint every ``eval_every`` steps and at the end.

        Inputs:
            train_batches: ``train_batches(epoch)`` gives that epoch's batches, the same ones every
                time it is called with that epoch (exact resume skips those already consumed).
            valid_batches: ``valid_batches()`` gives the validation batches; without it the metric
                is ``{"loss": mean training loss since the last evaluation}``.
            resume: continue the run in ``out_dir`` from its latest checkpoint.
        Outputs:
            a ``TrainResult``.
        """
        self._checkpoint_path, self._main = None, distributed.rank() == 0
        self._start(resume)
        self.task.model.train()
        if distributed.is_distributed():    # after _start: DDP broadcasts rank 0's (possibly resumed) weights
            self._ddp = torch.nn.parallel.DistributedDataParallel(self.task.model)
            self._ddp.register_forward_pre_hook(lambda module, args: setattr(self, "_forward_called", True))
        # a resumed run drops the events logged after its checkpoint (by the run that was killed)
        self._tensorboard = _TensorBoard(self.out_dir if self._main else None, self.config,
                                         purge_step=self.state["step"] + 1 if resume else None)
        try:
            return self._fit(train_batches, valid_batches)
        finally:
            self._ddp = None
            self._tensorboard.close()

    def _fit(self, train_batches, valid_batches) -> TrainResult:
        s, started, losses, stop = self.state, time.perf_counter() - self.state["elapsed"], {}, None
        bar = _Progress(self.config, s["step"], enabled=self._main)
        while stop is None:
            stop = self._limit_reached(started)
            if stop:
                break
            empty = True
            if hasattr(self.task, "start_epoch"):
                self.task.start_epoch(s["epoch"])
            for batch in itertools.islice(train_batches(s["epoch"]), s["position"], None):
                empty = False
                loss = self._train_step(batch)
                losses[s["step"]] = loss
                bar.update(s["step"], loss, _batch_size(batch))
                self._tensorboard.train_loss(s["step"], loss)
                if s["step"] % self.config.eval_every == 0:
                    self._evaluate(valid_batches, started)
                stop = self._limit_reached(started, epoch_done=False)
                if stop:
                    break
            else:
                if empty and s["position"] == 0:
                    raise ValueError(f"train_batches({s['epoch']}) gave no batches")
                s["epoch"], s["position"] = s["epoch"] + 1, 0
        bar.close()
        if s["loss_count"]:
            self._evaluate(valid_batches, started)
        return TrainResult(s["step"], s["epoch"], s["best"], dict(s["metrics"]), stop,
                           self._checkpoint_path, losses)

    def _train_step(self, batch) -> float:
        s, config, model = self.state, self.config, self.task.model
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(s["step"] + 1, s["plateau_scale"], s["epoch"]) * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        if self._ddp is not None:
            batch = distributed.shard(batch, distributed.rank(), distributed.world_size())
            self._forward_called = False
            self.task.model = self._ddp          # training_step's self.model(...) goes through DDP
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = self.task.training_step(batch)
        finally:
            self.task.model = model
        if self._ddp is not None and not self._forward_called:
            raise RuntimeError("distributed training: training_step must call self.model(...) for its forward "
                               "pass (calling submodules bypasses DistributedDataParallel)")
        loss.backward()
        if config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        self.optimizer.step()
        value = loss.detach().float()
        if self._ddp is not None:
            torch.distributed.all_reduce(value)
            value /= distributed.world_size()
        value = float(value)
        s["step"], s["position"] = s["step"] + 1, s["position"] + 1
        s["loss_sum"], s["loss_count"] = s["loss_sum"] + value, s["loss_count"] + 1
        return value

    def _limit_reached(self, started: float, epoch_done: bool = True) -> Optional[str]:
        s, config = self.state, self.config
        if config.early_stopping_patience is not None and s["bad_evals"] >= config.early_stopping_patience:
            return "early_stopping"
        if config.max_steps is not None and s["step"] >= config.max_steps:
            return "max_steps"
        if epoch_done and config.max_epochs is not None and s["epoch"] >= config.max_epochs:
            return "max_epochs"
        if config.max_time is not None:
            over = torch.tensor(float(time.perf_counter() - started >= config.max_time))
            if self._ddp is not None:                        # every rank follows rank 0's clock
                torch.distributed.broadcast(over, src=0)
            if over.item():
                return "max_time"
        return None

    # --- evaluation, log and checkpoint -----------------------------------------------------

    def _evaluate(self, valid_batches, started: float) -> None:
        """Validate, update best/patience/plateau, log and checkpoint."""
        s, config = self.state, self.config
        train_loss = s["loss_sum"] / max(1, s["loss_count"])
        metrics = self._validate(valid_batches) if valid_batches is not None else {"loss": train_loss}
        if config.monitor not in metrics:
            raise ValueError(f"monitor {config.monitor!r} is not among the validation metrics {sorted(metrics)}")
        s["elapsed"] = time.perf_counter() - started
        lr = self.optimizer.param_groups[-1]["lr"]          # the top group: the configured lr (lr_scale 1)
        value = metrics[config.monitor]
        improved = value < s["best"] if config.monitor_mode == "min" else value > s["best"]
        if improved:
            s["best"], s["bad_evals"] = value, 0
        else:
            s["bad_evals"] += 1
            if config.schedule == "plateau":
                s["plateau_scale"] /= config.plateau_factor
        s["metrics"], s["loss_sum"], s["loss_count"] = metrics, 0.0, 0
        if self.out_dir is not None and self._main:
            row = dict(step=s["step"], epoch=s["epoch"], elapsed_seconds=round(s["elapsed"], 3), lr=lr,
                       train_loss=train_loss, **metrics)
            _append_row(self.out_dir / LOG, row)
            self._tensorboard.evaluation(s["step"], metrics, train_loss=train_loss, lr=lr)
            self._save(best=improved)

    def _validate(self, valid_batches) -> dict:
        """Mean of ``validation_step`` over the batches (each batch weighs the same)."""
        model, totals, count = self.task.model, {}, 0
        model.eval()
        try:
            with torch.no_grad():
                for batch in valid_batches():
                    for name, value in self.task.validation_step(batch).items():
                        totals[name] = totals.get(name, 0.0) + float(value)
                    count += 1
        finally:
            model.train()
        if not count:
            raise ValueError("valid_batches() gave no batches")
        return {name: total / count for name, total in totals.items()}

    def _save(self, best: bool) -> None:
        """Checkpoint (``best``: also point the run's ``BEST`` at it)."""
        trainer_state = dict(self.state, optimizer=self.optimizer.state_dict(),
                             scheduler={"plateau_scale": self.state["plateau_scale"]}, rng=rng_state(),
                             task=self.task.state_dict() if hasattr(self.task, "state_dict") else None)
        config = {"task": self.task.config(), "train": asdict(self.config)}
        checkpoint = save_checkpoint(self.out_dir, self.task.model, config, step=self.state["step"],
                                     trainer_state=trainer_state, best=best)
        self._checkpoint_path = checkpoint.path

    # --- start: fresh or resumed ------------------------------------------------------------

    def _start(self, resume: bool) -> None:
        if not resume:
            if self.out_dir is not None and holds_run(self.out_dir):
                raise ValueError(f"out_dir {self.out_dir} already holds a run; pass resume=True or choose "
                                 f"another directory")
            _seed(self.config.seed)
            return
        if self.out_dir is None:
            raise ValueError("resume=True needs an out_dir holding a previous run")
        checkpoint = find_checkpoint(self.out_dir)
        saved, current = checkpoint.config.get("task"), json.loads(json.dumps(self.task.config()))
        if saved != current:
            raise ValueError(f"resuming with a different model/vocabulary: task config keys "
                             f"{_differing_keys(saved or {}, current)} differ from the checkpoint's")
        checkpoint.load_weights(self.task.model)
        self._checkpoint_path = checkpoint.path
        state = checkpoint.trainer_state()
        self.optimizer.load_state_dict(state.pop("optimizer"))
        set_rng_state(state.pop("rng"))
        state.pop("scheduler", None)
        task_state = state.pop("task", None)
        if task_state is not None and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(task_state)
        self.state.update(state)
        if self._main:
            _truncate_log(self.out_dir / LOG, self.state["step"])


# --- helpers ---------------------------------------------------------------------------------

class _Progress:
    """A tqdm bar on a TTY (if tqdm is installed), else a line every ``log_every`` steps."""

    def __init__(self, config: TrainConfig, step: int, enabled: bool = True):
        self.config, self.last, self.items = config, time.perf_counter(), 0
        self.enabled = enabled and config.progress
        self.bar = None
        if self.enabled and _tqdm is not None and sys.stderr.isatty():
            self.bar = _tqdm(total=config.max_steps, initial=step, unit="step", dynamic_ncols=True)

    def update(self, step: int, loss: float, items: int) -> None:
        self.items += items
        if self.bar is not None:
            rate = self.items / max(1e-9, time.perf_counter() - self.last)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", items_s=f"{rate:.0f}")
        elif self.enabled and step % self.config.log_every == 0:
            rate = self.items / max(1e-9, time.perf_counter() - self.last)
            print(f"step {step}  loss {loss:.4f}  {rate:.0f} items/s", file=sys.stderr)
            self.last, self.items = time.perf_counter(), 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _TensorBoard:
    """TensorBoard scalars in ``out_dir/tensorboard`` if ``config.tensorboard`` and the package is
    installed, else nothing (``out_dir`` None: off). Keyed by step: ``train/loss`` every ``log_every``
    steps (mean since the last point); at every evaluation ``valid/<metric>``, ``train/loss_since_eval``
    and ``train/lr``. ``purge_step``: events at that step or later are dropped (resume)."""

    def __init__(self, out_dir: Optional[Path], config: TrainConfig, purge_step: Optional[int] = None):
        self.writer, self.every, self.loss_sum, self.loss_count = None, config.log_every, 0.0, 0
        if out_dir is None or not config.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:                              # no tensorboard package: log.csv only
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)

    def train_loss(self, step: int, loss: float) -> None:
        if self.writer is None:
            return
        self.loss_sum, self.loss_count = self.loss_sum + loss, self.loss_count + 1
        if step % self.every == 0:
            self.writer.add_scalar("train/loss", self.loss_sum / self.loss_count, step)
            self.loss_sum, self.loss_count = 0.0, 0

    def evaluation(self, step: int, metrics: dict, train_loss: float, lr: float) -> None:
        if self.writer is None:
            return
        for name, value in metrics.items():
            self.writer.add_scalar(f"valid/{name}", value, step)
        self.writer.add_scalar("train/loss_since_eval", train_loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_native_bf16() -> Optional[bool]:
    """Whether the CPU multiplies bf16 matrices natively (x86: AVX-512 BF16 or AMX; Arm: BF16), from
    ``/proc/cpuinfo``; None where that cannot be read. Without it, bf16 autocast is emulated and slow
    (``python benchmarks/machine_facts.py``: a GEMM 4.4x slower than float32 on an AVX2 machine)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            words = set(handle.read().split())
    except OSError:
        return None
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def holds_run(out_dir: Path) -> bool:
    """True if ``out_dir`` already holds (part of) a training run: a checkpoint or a log."""
    out_dir = Path(out_dir)
    try:
        find_checkpoint(out_dir)
    except CheckpointError:
        return any(out_dir.glob("checkpoint-*")) or (out_dir / LOG).exists()
    return True


def _differing_keys(saved: dict, current: dict) -> list:
    return sorted(k for k in set(saved) | set(current) if saved.get(k, object()) != current.get(k, object()))


def _batch_size(batch) -> int:
    """Items in a batch, from its first tensor: every element of a tensor of token ids (integers),
    so a language model reports tokens/s; else its first dimension (sequences). 1 without one."""
    values = [batch] if isinstance(batch, torch.Tensor) else \
        batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim():
            return value.numel() if not value.is_floating_point() else value.shape[0]
    return 1


def _append_row(path: Path, row: dict) -> None:
    """Append ``row`` to the CSV at ``path``, writing the header first for a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    if new:
        fieldnames = list(row)
    else:
        with open(path, newline="", encoding="utf-8") as handle:
            fieldnames = next(csv.reader(handle))
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_log(path: Path, step: int) -> None:
    """Drop rows after ``step`` (logged by a run killed before its checkpoint was written)."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
    if len(kept) != len(rows):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(kept)
