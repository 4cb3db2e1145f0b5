"""Machine translation: sentence pairs -> byte-pair-encoded subwords -> a bidirectional rnnkit
encoder and an attention decoder -> batched beam search, scored with sacreBLEU and chrF.

Python API (imported on first use): ``fit``, ``evaluate``, ``translate``, ``load``, ``exportable``; the model
``Translator`` and its settings ``TranslatorConfig``, ``TranslateData``, ``Decoding``.
"""

from ..._lazy import exports
from ..spec import TaskSpec
from .config import Decoding, TranslateData, TranslateEvaluate, TranslatePredict, TranslatorConfig

SPEC = TaskSpec(
    name="translate",
    summary="a translator (attention encoder-decoder) on sentence pairs: two line-aligned files or TSV/JSONL",
    description="Train a translator: BPE subwords learnt on the training text, a bidirectional rnnkit GRU/LSTM "
                "encoder, an attention decoder (Luong general/dot or Bahdanau additive), label smoothing; "
                "validation reports the loss and the BLEU/chrF of greedy translations. Give the pairs as "
                "--source FILE --target FILE or as --data PAIRS.",
    data=TranslateData, model=TranslatorConfig, evaluate_options=TranslateEvaluate,
    predict_options=TranslatePredict, api="rnnkit.tasks.translate.api",
    data_help="a file of pairs: TSV (source TAB target) or JSON lines (default: --source and --target)",
    valid_help="a file of validation pairs (default: --valid-source/--valid-target, or 1,000 training pairs "
               "held out)",
    inputs="sentences to translate", data_optional=True, text_output=True,
    train_defaults={"lr": 2e-3, "eval_every": 1000, "monitor": "bleu",
                    "monitor_mode": "max"}, epochs=10,
)

__getattr__, __dir__, _lazy = exports(__name__, {
    "fit": ".api", "evaluate": ".api", "translate": ".api", "load": ".api", "predict_rows": ".api", "show": ".api",
    "exportable": ".api",
    "Translator": ".model", "Memory": ".model", "beam_search": ".search", "Hypothesis": ".search",
    "TranslationTask": ".task", "TrainedTranslator": ".task", "corpus_scores": ".task",
    "read_parallel": ".pairs", "read_pairs": ".pairs", "Pairs": ".pairs",
})
__all__ = ["SPEC", "Decoding", "TranslateData", "TranslateEvaluate", "TranslatePredict", "TranslatorConfig"] + _lazy
