"""Checkpoints: a directory a model can be rebuilt from, written so that a kill never loses one.

Layout of a run's output directory::

    OUT/
      LATEST                       the name of the newest complete checkpoint (one line)
      BEST                         the name of the checkpoint with the best validation metric so far
      checkpoint-00001200/
        model.safetensors          weights (safetensors; tied weights stored once)
        config.json                everything needed to rebuild the model: task, model config,
                                   vocabulary, step, ... (any JSON the caller gives)
        trainer.pt                 optimiser, schedule and RNG states, for exact resume

Atomicity: a checkpoint is written into a hidden temporary directory, flushed to disk, and
renamed to its final name (a new name, so the rename is atomic); then ``LATEST`` is replaced
atomically (temporary file + ``os.replace``), and ``BEST`` likewise when the checkpoint is the best
so far; only then are older checkpoints pruned (never the one ``BEST`` names). A process
killed at any moment leaves ``LATEST`` naming a complete checkpoint, or, before the first one,
no ``LATEST`` at all.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from ..files import dir_mode, file_mode, fsync_dir, write_text_atomic

LATEST = "LATEST"
BEST = "BEST"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER = "trainer.pt"
#: The config.json layout this release writes. 2: task configs record their data settings, and
#: vocabularies their special tokens. Format 1 (before the task registry) is still read.
FORMAT = 2
READS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or unreadable; the message says which and why."""


@dataclass
class Checkpoint:
    """A checkpoint on disk: ``path`` (its directory) and its ``config`` (the parsed config.json)."""

    path: Path
    config: dict

    def load_weights(self, model: torch.nn.Module) -> None:
        """Load the weights into ``model`` (built from ``config``); names and shapes must match."""
        try:
            missing, unexpected = load_model(model, str(self.path / WEIGHTS), strict=False)
        except (SafetensorError, OSError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint weights {self.path / WEIGHTS} are unreadable or do not "
                                  f"fit the model ({_first_line(error)})") from None
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {self.path} does not fit the model: missing {sorted(missing)[:5]}, "
                                  f"unexpected {sorted(unexpected)[:5]}")

    def trainer_state(self) -> dict:
        """The optimiser/schedule/RNG state saved for resuming (``trainer.pt``).

        ``trainer.pt`` is a pickle (NumPy's generator state is not allowed by ``weights_only``):
        resume only from checkpoints you trust. Weights and config never go through pickle.
        """
        path = self.path / TRAINER
        if not path.exists():
            raise CheckpointError(f"checkpoint {self.path} has no {TRAINER}: it cannot resume training")
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # any unpickling failure means a corrupt file
            raise CheckpointError(f"{path} is unreadable ({_first_line(error)})") from None


def save_checkpoint(out_dir: os.PathLike, model: torch.nn.Module, config: dict, *, step: int,
                    trainer_state: Optional[dict] = None, keep: int = 2, best: bool = False) -> Checkpoint:
    """Write a checkpoint of ``model`` under ``out_dir`` atomically and point ``LATEST`` (and, if
    ``best``, ``BEST``) at it.

    Args:
        out_dir: the run's output directory (created if needed).
        model: its ``state_dict`` is written as safetensors (shared/tied tensors once).
        config: JSON-serialisable description to rebuild the model (``step`` and ``format`` are added).
        step: the training step, used in the checkpoint's name.
        trainer_state: optimiser/schedule/RNG state for resume (``torch.save``), or None.
        keep: how many complete checkpoints to keep (the newest ones), besides the one ``BEST`` names.
        best: this is the best model so far (by the caller's validation metric).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    config = dict(config, step=int(step), format=FORMAT)
    text = json.dumps(config, indent=2, sort_keys=True)          # fails before anything is written
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-checkpoint-"))
    try:
        os.chmod(tmp, dir_mode())                             # mkdtemp's 0700 -> what the umask gives
        save_model(model, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(text + "\n", encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER)
        for file in tmp.iterdir():
            os.chmod(file, file_mode())                       # safetensors writes 0600: the umask's mode
            _fsync(file)
        final = _free_name(out, f"checkpoint-{int(step):08d}")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(out)
    write_text_atomic(out / LATEST, final.name + "\n")
    if best:
        write_text_atomic(out / BEST, final.name + "\n")
    best_name = (out / BEST).read_text(encoding="utf-8").strip() if (out / BEST).exists() else None
    _prune(out, keep=max(1, keep), protected={final.name, best_name})
    return Checkpoint(final, config)


def find_checkpoint(path: os.PathLike) -> Checkpoint:
    """The checkpoint at ``path``: a run directory (the checkpoint its ``LATEST`` names), a pointer
    file (``RUN/BEST``: the run's best checkpoint; ``RUN/LATEST``) or a checkpoint directory.

    Raises:
        CheckpointError: with one line saying what is missing or corrupt.
    """
    path = Path(path)
    if path.name == BEST and not path.exists() and (path.parent / LATEST).exists():
        raise CheckpointError(f"no best checkpoint in {path.parent}: the run has not validated yet; give "
                              f"{path.parent} for its latest checkpoint")
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the directory does not exist")
    if path.is_file() and path.name in (LATEST, BEST):
        path, pointer = path.parent, path.name
    else:
        pointer = LATEST
    if (path / pointer).exists():
        name = (path / pointer).read_text(encoding="utf-8").strip()
        path = path / name
        if not path.is_dir():
            raise CheckpointError(f"{path.parent / pointer} names {name!r}, which is missing")
    elif not (path / CONFIG).exists():
        raise CheckpointError(f"no checkpoint in {path}: expected {LATEST} or {CONFIG} there "
                              f"(give the --out directory of a training run)")
    for required in (CONFIG, WEIGHTS):
        if not (path / required).exists():
            raise CheckpointError(f"checkpoint {path} is incomplete: {required} is missing")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON ({_first_line(error)})") from None
    if not isinstance(config, dict) or not isinstance(config.get("format"), int):
        raise CheckpointError(f"{path / CONFIG} is not an rnnkit checkpoint config (it has no format number)")
    if config["format"] not in READS:
        raise CheckpointError(f"{path} has checkpoint format {config['format']}, which this rnnkit does not read "
                              f"(it reads formats {READS[0]}-{READS[-1]}): a newer rnnkit wrote it; upgrade rnnkit")
    return Checkpoint(path, config)


def load_task_model(path: os.PathLike, task: str, build, device="cpu") -> tuple:
    """Rebuild the model of a ``task`` checkpoint at ``path`` (as ``find_checkpoint`` reads it):
    ``build(task_config)`` makes it, the weights are loaded and it goes to ``device``.
    Returns ``(model, task_config, checkpoint)``.

    Raises:
        CheckpointError: no checkpoint there, or one of another task (naming both).
    """
    from .devices import resolve_device

    device = resolve_device(str(device))
    checkpoint = find_checkpoint(path)
    config = checkpoint.config.get("task", {})
    if config.get("task") != task:
        raise CheckpointError(f"{checkpoint.path} is a {config.get('task')!r} checkpoint, not a {task!r} one")
    model = build(config)
    checkpoint.load_weights(model)
    return model.to(device), config, checkpoint


# --- random number generators -------------------------------------------------------------------

def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's generators (CPU), for exact resume."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# --- helpers -------------------------------------------------------------------------------------

def _free_name(out: Path, name: str) -> Path:
    # A new directory name (so the rename cannot replace a checkpoint another LATEST names).
    candidate, k = out / name, 1
    while candidate.exists():
        candidate, k = out / f"{name}-{k}", k + 1
    return candidate


def _prune(out: Path, keep: int, protected: set) -> None:
    # Remove all but the ``keep`` newest checkpoints, never one named in ``protected``.
    checkpoints = sorted((p for p in out.glob("checkpoint-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in checkpoints[: max(0, len(checkpoints) - keep)] if p.name not in protected]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temporaries(out: Path) -> None:
    # Left by a process killed while writing; never named by LATEST.
    for path in out.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
