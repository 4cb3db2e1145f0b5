"""``TaskSpec``: what a task declares so that the command line, ``rnnkit.load`` and checkpoints can
serve it without knowing it. Standard library only (``rnnkit --help`` reads every spec)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from pathlib import Path
from typing import List, Optional

from ..files import check_encoding
from ..options import check, option


@dataclass(frozen=True)
class Command:
    """A command of the task's own (``rnnkit backtest``): it takes ``--checkpoint``, ``--data`` and the
    fields of ``options`` as flags, and calls the API module's ``function(checkpoints, data,
    device=..., **options) -> dict``, printed as ``rnnkit evaluate`` prints its results."""

    name: str
    options: type
    function: str
    help: str


@dataclass(frozen=True)
class TaskSpec:
    """One task of the registry (``rnnkit.tasks.TASKS``).

    Args:
        name: as in ``rnnkit train NAME`` and in every checkpoint's config (``"task": NAME``).
        summary: one line for ``rnnkit train --help``. description: a paragraph for ``rnnkit train NAME --help``.
        data: dataclass of how files become batches; its fields are flags of ``rnnkit train NAME``.
        model: dataclass of the model; fields with a flag are flags too (the ones the data fixes,
            such as a vocabulary size, have none).
        fit_options: dataclass of further keyword arguments of ``fit`` (flags of ``train``), or None.
        evaluate_options, predict_options: dataclasses of the task's own flags of ``rnnkit evaluate``
            and ``rnnkit predict`` (keyword arguments of its ``evaluate`` and ``predict``), or None.
        data_help, valid_help: ``--help`` of ``train``'s ``--data`` and ``--valid`` for this task.
        inputs: what ``rnnkit predict``'s positional arguments are for this task (for ``--help``).
        line_inputs: whether ``rnnkit predict`` reads its inputs as arguments or lines of ``--input``
            (False: the task's own predict options say where the data is, such as ``--data``).
        data_optional: whether ``--data`` of ``train`` and ``evaluate`` may be left out, because the
            task's own flags can name its files instead (a translator's ``--source``/``--target``);
            the task's ``fit``/``evaluate`` then get ``path=None``.
        text_output: ``rnnkit predict --output`` to a name other than .csv/.jsonl/.json writes
            ``show(row)`` as one line each (a translator's output is a text file).
        commands: the task's own commands (``Command``), such as forecasting's ``backtest``.
        ensembles: whether several checkpoints can evaluate and predict as one (a classifier: the
            mean of their probabilities; a forecaster: the median of their forecasts).
        train_defaults: ``TrainConfig`` defaults of this task's command line (``{"lr": 3e-3}``).
        epochs: epochs to train when no step, epoch or time limit is given.
        api: the module with the task's Python API, by name (imported when used; it may import torch):

            - ``fit(path, out, *, valid=None, data=Data(), model=None (dict of model fields), train,
              resume=False, **fit_options) -> TrainResult``;
            - ``evaluate(checkpoints, path, *, encoding=None, batch_size=None, device="cpu",
              **evaluate_options) -> dict`` (numbers first; ``rnnkit evaluate`` prints them);
            - the task's verb (``generate``, ``predict``, ``forecast``, ``translate``, ...) for Python,
              and for ``rnnkit predict``: ``predict_rows(checkpoints, inputs, *, device="cpu",
              **predict_options) -> list of dicts`` (its JSON lines, each with its input) and
              ``show(row) -> str`` (how it prints a row);
            - ``load(path, *, device="cpu")``: the trained model, ready to predict.

            ``checkpoints`` is a list of run or checkpoint directories (several: an ensemble, where
            the task supports one).
    """

    name: str
    summary: str
    description: str
    data: type
    model: type
    api: str
    fit_options: Optional[type] = None
    evaluate_options: Optional[type] = None
    predict_options: Optional[type] = None
    data_help: str = "training data"
    valid_help: str = "validation data"
    inputs: str = "inputs to predict from"
    line_inputs: bool = True
    data_optional: bool = False
    text_output: bool = False
    commands: tuple = ()
    ensembles: bool = False
    train_defaults: dict = field(default_factory=dict)
    epochs: int = 1

    def module(self) -> ModuleType:
        """The task's API module (``api``), imported."""
        return importlib.import_module(self.api)


@dataclass
class ReadText:
    """How ``rnnkit evaluate`` and ``predict`` read a text file: a base of the task option classes
    that read one, so that they share the ``--encoding`` flag."""

    encoding: Optional[str] = option(None, help="text encoding of the file", metavar="CODEC", valid=check_encoding,
                                     default_text="the model's training encoding")

    def __post_init__(self):
        check(self)


def checkpoint_paths(checkpoints) -> List[Path]:
    """One checkpoint path, or several (an ensemble's), as a non-empty list."""
    paths = [Path(checkpoints)] if isinstance(checkpoints, (str, Path)) else [Path(p) for p in checkpoints]
    if not paths:
        raise ValueError("no checkpoint given: give one path, or several for an ensemble")
    return paths


def single_checkpoint(checkpoints, task: str):
    """The one path of ``checkpoints`` (a path, or a list of one) for a task without ensembles."""
    if isinstance(checkpoints, (list, tuple)):
        if len(checkpoints) != 1:
            raise ValueError(f"a {task!r} model is one checkpoint, got {len(checkpoints)}: give one --checkpoint")
        return checkpoints[0]
    return checkpoints
