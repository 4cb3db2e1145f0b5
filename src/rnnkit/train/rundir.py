"""A run's output directory (``--out``): what may be in it, and claiming it before any data is read.

Layout: ``LATEST``, ``BEST``, ``checkpoint-*/`` (``rnnkit.train.checkpoint``), ``log.csv``,
``tensorboard/``, and the task's caches (a language model's ``tokens/``). ``run_directory`` is used
by every task's ``fit`` around all of its work, so that bad input or a failure before the first
checkpoint leaves nothing behind, and a directory of something else is never mixed into.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .checkpoint import BEST, LATEST, CheckpointError, find_checkpoint

LOG = "log.csv"
RUN_ENTRIES = (LATEST, BEST, LOG, "tensorboard", "tokens")      # besides checkpoint-* and .tmp-* entries


def holds_run(out_dir: Path) -> bool:
    """True if ``out_dir`` already holds (part of) a training run: a checkpoint or a log."""
    out_dir = Path(out_dir)
    try:
        find_checkpoint(out_dir)
    except CheckpointError:
        return any(out_dir.glob("checkpoint-*")) or (out_dir / LOG).exists()
    return True


def check_run_directory(out: Path, *, resume: bool, task: Optional[str] = None) -> None:
    """Refuse an ``out`` that cannot take this run, with one line saying what to do.

    Refused: a file; for a fresh run, a directory that holds a run or anything else; for
    ``resume``, a directory without a checkpoint, or one whose checkpoint is of another task.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a directory for the run")
    if resume:
        if not out.is_dir() or not (out / LATEST).exists():
            raise ValueError(f"--out {out} holds no checkpoint to resume from: start the run without --resume")
        saved = find_checkpoint(out).config.get("task", {}).get("task")
        if task is not None and saved != task:
            raise ValueError(f"--out {out} holds a {saved!r} run, not a {task!r} one: resume it with "
                             f"'rnnkit train {saved}', or choose another --out")
        return
    if not out.is_dir():
        return
    if holds_run(out):
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith(".tmp-") and p.name not in RUN_ENTRIES)
    if others:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(f"--out {out} is not empty (it holds {listed}): give a new or empty directory for the run")


@contextmanager
def run_directory(out: Path, *, resume: bool, task: Optional[str] = None) -> Iterator[Path]:
    """Claim ``out`` for a run (``check_run_directory``) and hand it to the ``with`` block.

    If the block fails before the run has written its first checkpoint, what the block created is
    removed again: the directory itself if it did not exist, else the entries it added (a token
    cache, say). A resumed run, or one with a checkpoint, is never touched.
    """
    out = Path(out)
    check_run_directory(out, resume=resume, task=task)
    existed = out.exists()
    before = set(out.iterdir()) if existed else set()
    try:
        yield out
    except BaseException:
        if not resume and out.is_dir() and not (out / LATEST).exists():
            if not existed:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for entry in set(out.iterdir()) - before:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise
