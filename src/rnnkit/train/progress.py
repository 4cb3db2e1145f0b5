"""What a training run shows while it runs.

- On a terminal (stderr a TTY, tqdm installed): a progress bar of the steps, with the loss, the
  learning rate, the throughput and what comes next (the next evaluation, the next checkpoint).
- Otherwise a line on stderr every ``log_every`` steps::

      step 120/2000 (6%)  loss 1.2345  lr 3.00e-03  5400 tokens/s  0:42 elapsed, 10:30 left  next: eval in 80 steps

- At every evaluation, one line on stdout with the validation metrics::

      step 200  epoch 0  validation loss 1.2345  perplexity 3.4368  (best)  train loss 1.3012  lr 3.00e-03  [4.1 s]
"""

from __future__ import annotations

import sys
import time
from typing import Optional

try:  # optional: a progress bar when available
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None


def clock(seconds: float) -> str:
    """``4:05`` or ``1:02:03`` for a duration in seconds."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Progress of one ``fit`` call.

    Args:
        log_every: steps between plain lines. enabled: show anything at all (rank 0, ``progress``).
        step: the step the run starts from (a resumed run's). total: the step it will stop at, where
            a step or epoch limit says so (else None). max_time: the time limit in seconds, or None.
        elapsed: seconds already spent (a resumed run's).
    """

    def __init__(self, *, log_every: int, enabled: bool, step: int, total: Optional[int],
                 max_time: Optional[float], elapsed: float):
        self.log_every, self.enabled, self.total, self.max_time = log_every, enabled, total, max_time
        self.first_step, self.began, self.elapsed_before = step, time.perf_counter(), elapsed
        self.last, self.items, self.unit = time.perf_counter(), 0, "items"
        self.bar = None
        if enabled and _tqdm is not None and sys.stderr.isatty():
            self.bar = _tqdm(total=total, initial=step, unit="step", dynamic_ncols=True)

    def update(self, step: int, loss: float, items: int, unit: str, lr: float, next_up: str) -> None:
        """After ``step``: its ``loss``, the ``items`` its batch held (for the throughput, in ``unit``:
        "tokens", "sequences"), the ``lr`` it used and what comes next (``"eval in 80 steps"``)."""
        if not self.enabled:
            return
        self.items, self.unit = self.items + items, unit
        if self.bar is not None:
            self.bar.update(1)
            rate = self.items / max(1e-9, time.perf_counter() - self.last)
            left = self.left(step)
            self.bar.set_postfix_str(f"loss {loss:.4f}, lr {lr:.2e}, {rate:.0f} {self.unit}/s"
                                     + (f", {clock(left)} left" if left is not None and self.total is None else "")
                                     + (f", {next_up}" if next_up else ""))
        elif step % self.log_every == 0:
            now = time.perf_counter()
            rate = self.items / max(1e-9, now - self.last)
            where = f"step {step}/{self.total} ({100 * step / self.total:.0f}%)" if self.total else f"step {step}"
            left = self.left(step)
            timing = clock(self.elapsed_before + now - self.began) + " elapsed" + (
                f", {clock(left)} left" if left is not None else "")
            print(f"{where}  loss {loss:.4f}  lr {lr:.2e}  {rate:.0f} {self.unit}/s  {timing}"
                  + (f"  next: {next_up}" if next_up else ""), file=sys.stderr, flush=True)
            self.last, self.items = now, 0

    def left(self, step: int) -> Optional[float]:
        """Seconds to the end: the sooner of the step limit (at this run's pace) and the time limit."""
        spent = time.perf_counter() - self.began
        candidates = []
        if self.total is not None and step > self.first_step:
            candidates.append((self.total - step) * spent / (step - self.first_step))
        if self.max_time is not None:
            candidates.append(self.max_time - self.elapsed_before - spent)
        return max(0.0, min(candidates)) if candidates else None

    def evaluation(self, step: int, epoch: int, metrics: dict, *, train_loss: float, lr: float, best: bool,
                   seconds: float) -> None:
        """One stdout line with an evaluation's metrics."""
        if not self.enabled:
            return
        shown = "  ".join(f"{name} {value}" if isinstance(value, int) else f"{name} {value:.4f}"
                          for name, value in metrics.items())
        self.write(f"step {step}  epoch {epoch}  validation {shown}{'  (best)' if best else ''}  "
                   f"train loss {train_loss:.4f}  lr {lr:.2e}  [{seconds:.1f} s]", file=sys.stdout)

    def write(self, line: str, file=None) -> None:
        """A line that does not break the bar (stderr unless ``file`` says otherwise)."""
        if not self.enabled:
            return
        file = file or sys.stderr
        if self.bar is not None:
            self.bar.write(line, file=file)
        else:
            print(line, file=file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
