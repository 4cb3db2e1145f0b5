"""rnnkit: recurrent neural networks written from their equations, with hand-written BPTT."""

from . import nn

__version__ = "0.1.0"



def load(path):
    """Rebuild a trained model from a checkpoint (a run's ``--out`` directory or one checkpoint).

    For a language model it returns a ``TrainedLanguageModel`` with ``generate(prompt, length, ...)``;
    for a classifier a ``TrainedClassifier`` with ``predict(texts)`` and ``explain(text)``.
    """
    from .tasks.lm import load as load_lm
    from .train import CheckpointError, find_checkpoint

    task = find_checkpoint(path).config.get("task", {}).get("task")
    if task == "lm":
        return load_lm(path)
    if task == "classify":
        from .tasks.classify_files import load as load_classifier

        return load_classifier(path)
    raise CheckpointError(f"{path}: no loader for a checkpoint of task {task!r}")


__all__ = ["nn", "load", "__version__"]
