"""Sequence classification: labelled texts or numeric sequences -> a recurrent encoder with
pooling -> classes (single- or multi-label), with ensembles, explanations and transfer from a
language model.

Python API (imported on first use): ``fit``, ``evaluate``, ``predict``, ``explain``, ``load``; the
model ``SequenceClassifier`` and its settings ``ClassifierConfig``, ``ClassifyData``.
"""

from ..._lazy import exports
from ..spec import TaskSpec
from .config import ClassifierConfig, ClassifyData, ClassifyEvaluate, ClassifyFit, ClassifyPredict

SPEC = TaskSpec(
    name="classify",
    summary="a sequence classifier on labelled texts (CSV/TSV/JSONL/SST) or numeric sequences",
    description="Train a classifier (embedding or features -> bidirectional rnnkit RNN/LSTM/GRU -> pooling -> "
                "classes). --data digits trains on scikit-learn's 8x8 digits read row by row.",
    data=ClassifyData, model=ClassifierConfig, fit_options=ClassifyFit, evaluate_options=ClassifyEvaluate,
    predict_options=ClassifyPredict, api="rnnkit.tasks.classify.api",
    data_help="training file, or 'digits' for the built-in digits",
    valid_help="validation file (default: 10% of --data held out with a fixed seed, see --valid-fraction)",
    inputs="texts to classify", ensembles=True,
    train_defaults={"lr": 3e-3, "eval_every": 100}, epochs=10,
)

__getattr__, __dir__, _lazy = exports(__name__, {
    "fit": ".api", "evaluate": ".api", "predict": ".api", "explain": ".api", "load": ".api", "exportable": ".api",
    "predict_rows": ".api", "show": ".api", "checkpoint_paths": ".api",
    "SequenceClassifier": ".model", "ClassifierOutput": ".model", "init_from_lm": ".model",
    "ClassifierTask": ".task", "balanced_weights": ".task",
    "TrainedClassifier": ".trained", "Ensemble": ".trained", "Prediction": ".trained", "Explanation": ".trained",
    "read_examples": ".examples", "split": ".examples", "DIGITS": ".examples",
})
__all__ = ["SPEC", "ClassifierConfig", "ClassifyData", "ClassifyEvaluate", "ClassifyFit", "ClassifyPredict"] + _lazy
