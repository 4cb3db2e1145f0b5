"""Language modelling: a character, word or subword (BPE) model of text, trained with truncated
BPTT, evaluated in perplexity and bits per character, sampled to generate text.

Python API (imported on first use): ``fit``, ``evaluate``, ``generate``, ``load`` (then
``.generate(prompt, length)`` streams); the model ``LanguageModel`` and its settings ``LMConfig``,
``LMData``, ``Sampling``.
"""

from ..._lazy import exports
from ..spec import TaskSpec
from .config import LMConfig, LMData, LMEvaluate, Sampling

SPEC = TaskSpec(
    name="lm",
    summary="a character, word or subword (BPE) language model on a text file",
    description="Train a language model (embedding -> rnnkit RNN/LSTM/GRU -> decoder) with truncated BPTT on "
                "any text file.",
    data=LMData, model=LMConfig, evaluate_options=LMEvaluate, predict_options=Sampling,
    api="rnnkit.tasks.lm.api",
    data_help="training text file",
    valid_help="validation text file (default: the last 10% of --data, see --valid-fraction)",
    inputs="prompts to continue",
    train_defaults={"lr": 3e-3, "eval_every": 200}, epochs=1,
)

__getattr__, __dir__, _lazy = exports(__name__, {
    "fit": ".api", "evaluate": ".api", "generate": ".api", "predict_rows": ".api", "load": ".api",
    "exportable": ".api", "show": ".api",
    "LanguageModel": ".model", "sample": ".model", "embedding_dropout": ".model",
    "LanguageModelTask": ".task", "TrainedLanguageModel": ".task",
})
__all__ = ["SPEC", "LMConfig", "LMData", "LMEvaluate", "Sampling"] + _lazy
