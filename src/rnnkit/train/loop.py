"""The training engine shared by every task: a seeded, resumable, interrupt-safe loop around ``Task``.

``Trainer(task, TrainConfig(...), out_dir).fit(train_batches, valid_batches)`` runs the loop. Every
``eval_every`` steps (and at the end) it validates, appends a row to ``out_dir/log.csv`` and writes a
checkpoint holding everything needed to continue *exactly* (``fit(..., resume=True)``). Between
evaluations it also writes a checkpoint every ``checkpoint_every`` minutes, and Ctrl-C (SIGINT) or
SIGTERM ends training at the next step boundary with a checkpoint (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from ..machine import has_native_bf16 as cpu_has_native_bf16
from ..nn import native
from . import distributed
from .checkpoint import find_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .devices import resolve_device, to_device
from .progress import Progress, clock
from .rundir import LOG, holds_run
from .task import Task, hook, validate

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrainResult:
    """What ``fit`` returns.

    Outputs:
        steps, epochs: counters at the end (epochs = completed epochs).
        best: the best value of the monitored metric; metrics: the last validation metrics.
        stopped_because: "max_steps", "max_epochs", "max_time", "early_stopping" or "interrupted".
        checkpoint: the last checkpoint's directory (None without ``out_dir``).
        losses: ``{step: training loss}`` of the steps run by this call.
        signal: the signal that interrupted training (``signal.SIGINT``, ``signal.SIGTERM``), or None.
    """

    steps: int
    epochs: int
    best: float
    metrics: dict
    stopped_because: str
    checkpoint: Optional[Path]
    losses: dict = field(default_factory=dict)
    signal: Optional[int] = None


class ResumeMismatch(ValueError):
    """Resuming with another model, vocabulary or data settings than the run's; ``keys`` names them
    (``"model.hidden_size"``, ``"data.tokens"``)."""

    def __init__(self, keys: list):
        super().__init__(f"resuming with a different model/vocabulary: task config keys {keys} differ from "
                         f"the checkpoint's (a resumed run keeps its model, vocabulary and data settings)")
        self.keys = keys


class TrainingDiverged(ValueError):
    """The training loss (or, with clipping, the gradient norm) became NaN or infinite: the run stops
    before that step updates the weights."""

    def __init__(self, step: int, epoch: int, loss: float, checkpoint: Optional[Path], what: str = "loss"):
        where = f"; the last checkpoint is {checkpoint}" if checkpoint else ""
        value = "not finite" if what != "loss" else loss
        super().__init__(f"the training {what} is {value} at step {step} (epoch {epoch}), so training stopped before "
                         f"that step changed the weights: lower --lr, set --clip, or look for inf/NaN in the "
                         f"data{where}")
        self.step, self.loss = step, loss


class Trainer:
    """Train ``task.model`` with ``config``; checkpoints and ``log.csv`` go to ``out_dir`` (if given),
    and TensorBoard scalars to ``out_dir/tensorboard`` where the package is installed.

    Args:
        task: a ``Task`` (or an object with its four required members). Build its model after
            seeding if the initial weights must be reproducible.
        config: a ``TrainConfig``.
        out_dir: the run directory; None keeps nothing on disk (and cannot resume).

    Data-parallel: with a ``torch.distributed`` group of world size > 1 (``distributed.init_from_env``
    under torchrun) ``fit`` trains through ``DistributedDataParallel``. Every process calls ``fit``
    with the same arguments; ``train_batches(epoch)`` yields the same GLOBAL batches everywhere and
    ``training_step`` gets this rank's share of every tensor in them (``distributed.shard``; a batch
    size divisible by the world size gives equal shards). Every rank validates on all of
    ``valid_batches()`` and loads the checkpoint on resume; only rank 0 shows progress and writes
    ``log.csv``/checkpoints. Logged training losses are means over ranks. All ranks stop at the same
    step (time limit, interrupt).

    Devices: the model and every batch go to ``config.device``. Random generators are saved for the
    CPU only, so an exact resume is guaranteed on the CPU.
    """

    def __init__(self, task: Task, config: TrainConfig, out_dir: Optional[Path] = None):
        self.task, self.config = task, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = resolve_device(config.device)
        if config.bf16 and cpu_has_native_bf16() is False:
            warnings.warn("bf16=True on a CPU without bf16 matrix instructions (AVX-512 BF16, AMX): autocast "
                          "will be slower than float32 here; leave bf16 off", stacklevel=2)
        task.model.to(self.device)
        params = hook(task, "param_groups")()
        self.optimizer = _make_optimizer(task.model.parameters() if params is None else params, config)
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
                time it is called with that epoch (exact resume skips those already consumed). If it
                has a ``len()`` (batches per epoch), progress shows the total and the time left.
            valid_batches: ``valid_batches()`` gives the validation batches; without it the metric
                is ``{"loss": mean training loss since the last evaluation}``.
            resume: continue the run in ``out_dir`` from its latest checkpoint.
        Outputs:
            a ``TrainResult``. Interrupted (SIGINT/SIGTERM), it has ``stopped_because="interrupted"``
            and a checkpoint of the last finished step (its metrics are the last evaluation's).
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
        self._signal, self._saved_step, self._last_save = None, self.state["step"], time.perf_counter()
        self._eval_seconds, self._step_seconds = None, []
        previous = self._catch_signals()
        # denormals flushed to zero (on x86, the MXCSR of this thread and of the intra-op threads):
        # the gradients of a long window underflow into them, and BLAS slows down on them many times
        flushing = self.config.flush_denormal and native.set_flush_denormal(True)
        try:
            return self._fit(train_batches, valid_batches)
        finally:
            if flushing:
                native.set_flush_denormal(False)       # PyTorch's default
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._ddp = None
            self._tensorboard.close()

    def _fit(self, train_batches, valid_batches) -> TrainResult:
        s, config = self.state, self.config
        started, losses, stop = time.perf_counter() - s["elapsed"], {}, None
        self._started = started
        self._valid_count = _length(valid_batches)
        progress = Progress(log_every=config.log_every, enabled=self._main and config.progress, step=s["step"],
                            total=self._total_steps(train_batches), max_time=config.max_time, elapsed=s["elapsed"])
        try:
            while stop is None:
                stop = self._limit_reached(started)
                if stop:
                    break
                empty = True
                hook(self.task, "start_epoch")(s["epoch"])
                for batch in itertools.islice(train_batches(s["epoch"]), s["position"], None):
                    empty = False
                    loss = self._train_step(batch)
                    losses[s["step"]] = loss
                    lr = self.optimizer.param_groups[-1]["lr"]     # the top group: the configured lr (lr_scale 1)
                    progress.update(s["step"], loss, _batch_size(batch), _batch_unit(batch), lr, self._next_up())
                    self._tensorboard.train_loss(s["step"], loss)
                    if s["step"] % config.eval_every == 0:
                        self._evaluate(valid_batches, started, progress)
                    stop = self._limit_reached(started, epoch_done=False)
                    if stop:
                        break
                    if self._checkpoint_due():
                        self._save(best=False, started=started)
                else:
                    if empty and s["position"] == 0:
                        raise ValueError(f"train_batches({s['epoch']}) gave no batches")
                    s["epoch"], s["position"] = s["epoch"] + 1, 0
            if stop == "interrupted":
                if self._saved_step != s["step"]:
                    self._save(best=False, started=started)
                where = f"; checkpoint {self._checkpoint_path}" if self._checkpoint_path else ""
                progress.write(f"interrupted at step {s['step']}{where}")
            elif s["loss_count"]:
                self._evaluate(valid_batches, started, progress)
        finally:
            progress.close()
        return TrainResult(s["step"], s["epoch"], s["best"], dict(s["metrics"]), stop, self._checkpoint_path,
                           losses, self._signal if stop == "interrupted" else None)

    def _train_step(self, batch) -> float:
        began = time.perf_counter()
        s, config, model = self.state, self.config, self.task.model
        lr = config.lr_at(s["step"] + 1, s["plateau_scale"], s["epoch"], self._elapsed())
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type != "cpu":
            batch = to_device(batch, self.device)
        if self._ddp is not None:
            batch = distributed.shard(batch, distributed.rank(), distributed.world_size())
            self._forward_called = False
            self.task.model = self._ddp          # training_step's self.model(...) goes through DDP
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = self.task.training_step(batch)
        finally:
            self.task.model = model
        if self._ddp is not None and not self._forward_called:
            raise RuntimeError("distributed training: training_step must call self.model(...) for its forward "
                               "pass (calling submodules bypasses DistributedDataParallel)")
        loss.backward()
        grad_norm = None
        if config.clip_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        value = loss.detach().float()
        if self._ddp is not None:
            torch.distributed.all_reduce(value)
            value /= distributed.world_size()
        value = float(value)
        if not math.isfinite(value):                     # every rank sees it: the reduced loss is not finite
            raise TrainingDiverged(s["step"] + 1, s["epoch"], value, self._checkpoint_path)
        if grad_norm is not None and not math.isfinite(float(grad_norm)):      # DDP: gradients are reduced
            raise TrainingDiverged(s["step"] + 1, s["epoch"], value, self._checkpoint_path, what="gradient norm")
        self.optimizer.step()
        s["step"], s["position"] = s["step"] + 1, s["position"] + 1
        s["loss_sum"], s["loss_count"] = s["loss_sum"] + value, s["loss_count"] + 1
        self._step_seconds.append(time.perf_counter() - began)
        return value

    # --- when to stop, and what comes next ----------------------------------------------------

    def _elapsed(self) -> float:
        """Seconds since the run began (resumed runs: their earlier time included), for the
        "cosine_time" schedule; under distributed training the slowest rank's, so every rank
        uses the same learning rate."""
        if self.config.schedule != "cosine_time":
            return 0.0
        elapsed = torch.tensor([time.perf_counter() - self._started], dtype=torch.float64)
        if self._ddp is not None:
            torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
        return float(elapsed)

    def _limit_reached(self, started: float, epoch_done: bool = True) -> Optional[str]:
        s, config = self.state, self.config
        if config.early_stopping_patience is not None and s["bad_evals"] >= config.early_stopping_patience:
            return "early_stopping"
        if config.max_steps is not None and s["step"] >= config.max_steps:
            return "max_steps"
        if epoch_done and config.max_epochs is not None and s["epoch"] >= config.max_epochs:
            return "max_epochs"
        time_up = config.max_time is not None and \
            time.perf_counter() - started + self._final_evaluation_seconds() >= config.max_time
        flags = torch.tensor([float(time_up), float(self._signal or 0)])
        if self._ddp is not None:                        # every rank stops at the same step
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        if flags[1]:
            self._signal = self._signal or int(flags[1])
            return "interrupted"
        return "max_time" if flags[0] else None

    def _final_evaluation_seconds(self) -> float:
        """What the final evaluation will take, so that ``max_time`` bounds the whole run: the last
        evaluation's time, or before one, the validation batches at half a training step each."""
        if self._eval_seconds is not None:
            return self._eval_seconds
        if self._valid_count and self._step_seconds:
            return 0.5 * self._valid_count * sorted(self._step_seconds)[len(self._step_seconds) // 2]
        return 0.0

    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        return (self.out_dir is not None and self._main and every is not None
                and time.perf_counter() - self._last_save >= 60 * every)

    def _next_up(self) -> str:
        """``"eval in 80 steps, checkpoint in 9:18"``."""
        parts = [f"eval in {self.config.eval_every - self.state['step'] % self.config.eval_every} steps"]
        if self.out_dir is not None and self.config.checkpoint_every is not None:
            parts.append(f"checkpoint in {clock(60 * self.config.checkpoint_every - time.perf_counter() + self._last_save)}")
        return ", ".join(parts)

    def _total_steps(self, train_batches) -> Optional[int]:
        limits = [self.config.max_steps] if self.config.max_steps is not None else []
        per_epoch = _length(train_batches)
        if self.config.max_epochs is not None and per_epoch:
            limits.append(self.config.max_epochs * per_epoch)
        return min(limits) if limits else None

    # --- signals -------------------------------------------------------------------------------

    def _catch_signals(self) -> dict:
        """Make SIGINT and SIGTERM end training at the next step boundary (main thread only, where
        Python allows handlers); returns the handlers to restore."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum, frame) -> None:
        self._signal = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)        # a second Ctrl-C stops at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self._main:
            _say(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint "
                 f"(press Ctrl-C again to stop at once)\n")

    # --- evaluation, log and checkpoint -----------------------------------------------------

    def _evaluate(self, valid_batches, started: float, progress: Progress) -> None:
        """Validate, update best/patience/plateau, log and checkpoint."""
        s, config = self.state, self.config
        train_loss = s["loss_sum"] / max(1, s["loss_count"])
        began = time.perf_counter()
        metrics = self._validate(valid_batches) if valid_batches is not None else {"loss": train_loss}
        self._eval_seconds = time.perf_counter() - began
        if config.monitor not in metrics:
            raise ValueError(f"monitor {config.monitor!r} is not among the validation metrics {sorted(metrics)}")
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
        s["elapsed"] = time.perf_counter() - started
        progress.evaluation(s["step"], s["epoch"], metrics, train_loss=train_loss, lr=lr, best=improved,
                            seconds=self._eval_seconds)
        if self.out_dir is not None and self._main:
            row = dict(step=s["step"], epoch=s["epoch"], elapsed_seconds=round(s["elapsed"], 3), lr=lr,
                       train_loss=train_loss, **metrics)
            _append_row(self.out_dir / LOG, row)
            self._tensorboard.evaluation(s["step"], metrics, train_loss=train_loss, lr=lr)
            self._save(best=improved, started=started)

    def _validate(self, valid_batches) -> dict:
        """The metrics of one pass over ``valid_batches()`` (``rnnkit.train.task.validate``)."""
        return validate(self.task, valid_batches(), self.device)

    def _save(self, best: bool, started: float) -> None:
        """Checkpoint (``best``: also point the run's ``BEST`` at it); rank 0 with an out_dir only."""
        if self.out_dir is None or not self._main:
            return
        self.state["elapsed"] = time.perf_counter() - started
        trainer_state = dict(self.state, optimizer=self.optimizer.state_dict(),
                             scheduler={"plateau_scale": self.state["plateau_scale"]}, rng=rng_state(),
                             task=hook(self.task, "state_dict")())
        config = {"task": self.task.config(), "train": asdict(self.config)}
        checkpoint = save_checkpoint(self.out_dir, self.task.model, config, step=self.state["step"],
                                     trainer_state=trainer_state, best=best)
        self._checkpoint_path, self._saved_step, self._last_save = checkpoint.path, self.state["step"], time.perf_counter()

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
        differing = _differing_keys(saved or {}, current)
        if differing:
            raise ResumeMismatch(differing)
        checkpoint.load_weights(self.task.model)
        self._checkpoint_path = checkpoint.path
        state = checkpoint.trainer_state()
        self.optimizer.load_state_dict(state.pop("optimizer"))
        set_rng_state(state.pop("rng"))
        state.pop("scheduler", None)
        task_state = state.pop("task", None)
        if task_state is not None:
            hook(self.task, "load_state_dict")(task_state)
        self.state.update(state)
        if self._main:
            _truncate_log(self.out_dir / LOG, self.state["step"])


# --- helpers ---------------------------------------------------------------------------------

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


def _say(text: str) -> None:
    # From a signal handler: a raw write, never Python's buffered stderr (which may be mid-write).
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (AttributeError, OSError, ValueError):     # stderr replaced by an object without a descriptor
        pass


def _first_tensor(batch) -> Optional[torch.Tensor]:
    """The first tensor with a dimension in a batch (a tensor, tuple, list, dict or dataclass)."""
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        values = [getattr(batch, f.name) for f in dataclasses.fields(batch)]
    else:
        values = [batch] if isinstance(batch, torch.Tensor) else \
            list(batch.values()) if isinstance(batch, dict) else list(batch) if isinstance(batch, (list, tuple)) else []
    return next((value for value in values if isinstance(value, torch.Tensor) and value.dim()), None)


def _batch_size(batch) -> int:
    """Items in a batch, from its first tensor: every element of a tensor of token ids (integers),
    so a language model reports tokens/s; else its first dimension (sequences). 1 without one."""
    tensor = _first_tensor(batch)
    if tensor is None:
        return 1
    return tensor.shape[0] if tensor.is_floating_point() else tensor.numel()


def _batch_unit(batch) -> str:
    """What ``_batch_size`` counts: "tokens", "sequences" or "batches"."""
    tensor = _first_tensor(batch)
    return "batches" if tensor is None else "sequences" if tensor.is_floating_point() else "tokens"


def _length(batches) -> Optional[int]:
    """``len(batches)`` where it has one (batches per epoch), else None."""
    try:
        return len(batches)
    except TypeError:
        return None


def _differing_keys(saved: dict, current: dict, prefix: str = "") -> list:
    """Keys whose values differ, ``"data.tokens"`` for nested dicts; keys a checkpoint of an earlier
    release did not save are not compared."""
    keys = []
    for key in sorted(saved):
        a, b = saved[key], current.get(key, object())
        if isinstance(a, dict) and isinstance(b, dict) and key in ("model", "data"):
            keys += _differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


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
