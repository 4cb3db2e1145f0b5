"""The applications built on the recurrent core, one package per task, and the registry of them.

Every task package (``rnnkit/tasks/NAME/``) declares a ``SPEC`` (``rnnkit.tasks.spec.TaskSpec``):
its configs, whose fields make its command line, and the module of its Python API (``fit``,
``evaluate``, ``predict``, ``load``). The command line (``rnnkit train NAME``, ``evaluate``,
``predict``) and ``rnnkit.load`` work through this registry, on the task a checkpoint records.
Adding a task is its own package plus one line in ``TASKS``.
"""

from __future__ import annotations

import importlib
from typing import List, Sequence, Union

from .spec import TaskSpec

#: name -> the package whose ``SPEC`` declares the task.
TASKS = {
    "lm": "rnnkit.tasks.lm",
    "classify": "rnnkit.tasks.classify",
    "forecast": "rnnkit.tasks.forecast",
    "translate": "rnnkit.tasks.translate",
    "speech": "rnnkit.tasks.speech",
}


def spec(name: str) -> TaskSpec:
    """The spec of task ``name`` (ValueError naming the known tasks for any other name)."""
    if name not in TASKS:
        raise ValueError(f"no task {name!r}: rnnkit knows {', '.join(TASKS)}")
    found = importlib.import_module(TASKS[name]).SPEC
    assert found.name == name, (found.name, name)
    return found


def specs() -> List[TaskSpec]:
    """Every task's spec, in registry order."""
    return [spec(name) for name in TASKS]


def task_of(path) -> str:
    """The task a checkpoint records (``path``: a run directory, ``RUN/BEST`` or a checkpoint)."""
    from rnnkit.train.checkpoint import CheckpointError, find_checkpoint

    checkpoint = find_checkpoint(path)
    name = checkpoint.config.get("task", {}).get("task")
    if name not in TASKS:
        raise CheckpointError(f"{checkpoint.path} is a checkpoint of task {name!r}, which this rnnkit does not "
                              f"know (it knows {', '.join(TASKS)}): use the rnnkit that wrote it, or a newer one")
    return name


def spec_of(paths: Union[str, Sequence], *, expected: str = None, verb: str = None) -> TaskSpec:
    """The spec of the task that the checkpoint(s) at ``paths`` record; several must share one.

    ``expected``: the task a command needs (``verb`` names the command in the error), for one line
    naming both tasks when the checkpoint is of another: "runs/clf is a 'classify' checkpoint;
    'rnnkit generate' needs an 'lm' one".
    """
    from rnnkit.train.checkpoint import CheckpointError

    paths = [paths] if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence) else list(paths)
    if not paths:
        raise ValueError("no checkpoint given: give a run or checkpoint directory")
    names = [task_of(path) for path in paths]
    for path, name in zip(paths[1:], names[1:]):
        if name != names[0]:
            raise CheckpointError(f"{path} is a {name!r} checkpoint but {paths[0]} is a {names[0]!r} one: "
                                  f"give checkpoints of one task")
    if expected is not None and names[0] != expected:
        raise CheckpointError(f"{paths[0]} is a {names[0]!r} checkpoint; {verb or 'this'} needs a {expected!r} one")
    found = spec(names[0])
    if len(paths) > 1 and not found.ensembles:
        raise CheckpointError(f"{paths[0]} is a {names[0]!r} checkpoint: ensembles (several checkpoints) are for "
                              f"tasks that support them ({', '.join(s.name for s in specs() if s.ensembles)}); "
                              f"give one checkpoint")
    return found


def load(path, *, task: str = None, device: str = "cpu"):
    """Rebuild a trained model from its checkpoint alone, whatever its task.

    Args:
        path: a run directory (its latest checkpoint), ``RUN/BEST`` or a checkpoint directory; for a
            task with ensembles (classification), a list of them.
        task: the task it must be (a CheckpointError naming both otherwise), or None for any.
        device: where the model goes.
    Outputs:
        the task's trained model: a language model's has ``generate``; a classifier's ``predict``
        and ``explain``; see each task's ``load``.
    """
    return spec_of(path, expected=task).module().load(path, device=device)


__all__ = ["TASKS", "TaskSpec", "spec", "specs", "spec_of", "task_of", "load"]
