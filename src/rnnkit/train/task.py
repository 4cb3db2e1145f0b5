"""``Task``: what the engine trains, as a small base class whose optional hooks are explicit no-ops;
and ``validate``, the one validation pass that training and ``evaluate`` share.

A task owns a model and says how a batch becomes a loss (``training_step``) and how a batch becomes
*sufficient statistics* for its metrics (``validation_step``: sums of losses, counts of tokens,
a confusion matrix, n-gram counts, edit counts ...). The engine adds those up over the validation
batches and the task turns the totals into corpus-level metrics (``validation_metrics``), so that a
corpus BLEU, WER or accuracy is computed once over the whole set, never as a mean of batch means.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

import torch

from .devices import to_device


class Task:
    """Base class of every task. Override the first three; the rest are hooks with defaults.

    Attributes:
        model: the ``torch.nn.Module`` trained. During ``training_step`` under distributed training
            it is the ``DistributedDataParallel`` wrapper, so the forward pass must be one call
            ``self.model(...)`` (submodules called directly would bypass gradient synchronisation,
            which the engine refuses). The loss should be a mean over items, and every parameter
            must get a gradient in every step. ``validation_step`` sees the plain module.

    The engine also accepts an object that does not derive from ``Task`` but has ``model``,
    ``training_step``, ``validation_step`` and ``config``: it then uses these defaults for the hooks.
    """

    model: torch.nn.Module

    def training_step(self, batch) -> torch.Tensor:
        """The scalar loss of one batch (the engine runs backward and the optimiser)."""
        raise NotImplementedError

    def validation_step(self, batch) -> dict:
        """Sufficient statistics of one batch: numbers, NumPy arrays or tensors that add up over
        batches (``{"loss_sum": ..., "tokens": ...}``). Runs under ``torch.no_grad`` in eval mode."""
        raise NotImplementedError

    def config(self) -> dict:
        """JSON describing the model and its vocabulary/labels (with ``"task": NAME``): saved in every
        checkpoint, enough to rebuild the model, and compared on resume."""
        raise NotImplementedError

    # --- hooks with defaults -------------------------------------------------------------------

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        """Metrics from the statistics ``totals`` summed over ``batches`` validation batches.

        Default: each statistic divided by ``batches`` (the mean over batches, every batch weighing
        the same). Override with the task's corpus-level metrics (``loss = loss_sum / tokens``).
        """
        return {name: float(value) / batches for name, value in totals.items()}

    def param_groups(self) -> Optional[List[dict]]:
        """Optimiser parameter groups (an ``"lr_scale"`` key multiplies the scheduled lr of its group:
        discriminative learning rates), or None for all of ``model.parameters()`` in one group."""
        return None

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch's batches, also when a resumed run continues mid-epoch (gradual
        unfreezing sets ``requires_grad`` here; frozen parameters get no update)."""

    def state_dict(self) -> Optional[dict]:
        """State the task carries between batches (a language model's hidden state across truncated
        BPTT windows), saved in every checkpoint; None for none."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned, on resume."""


def hook(task, name: str):
    """``task``'s method ``name``, or ``Task``'s default for a task that does not derive from ``Task``."""
    method = getattr(task, name, None)
    return method if method is not None else getattr(Task, name).__get__(task)


def validation_totals(task, batches: Iterable, device: Optional[torch.device] = None) -> Tuple[dict, int]:
    """``task.validation_step`` over ``batches`` in eval mode without gradients: the statistics summed,
    and the number of batches.

    Inputs: batches: an iterable of batches; device: where to move each batch first (None: leave it).
    """
    model, totals, count = task.model, {}, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                if device is not None:
                    batch = to_device(batch, device)
                for name, value in task.validation_step(batch).items():
                    totals[name] = totals[name] + value if name in totals else value
                count += 1
    finally:
        model.train(was_training)
    if not count:
        raise ValueError("the validation data gave no batches")
    return totals, count


def validate(task, batches: Iterable, device: Optional[torch.device] = None) -> dict:
    """One validation pass: the metrics (``validation_metrics``) of the statistics summed over
    ``batches`` (``validation_totals``). The engine calls this at every evaluation and each task's
    ``evaluate`` calls it too, so both report the same number on the same data.

    Outputs: ``{metric: value}``, numbers (counts such as ``tokens`` may be ints).
    """
    totals, count = validation_totals(task, batches, device)
    return hook(task, "validation_metrics")(totals, count)
