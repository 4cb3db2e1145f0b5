"""The classifier's settings: its shape (``ClassifierConfig``), how files become examples and
batches (``ClassifyData``), the other options of ``fit`` (``ClassifyFit``), and how ``rnnkit
evaluate`` / ``predict`` read and show (``ClassifyEvaluate``, ``ClassifyPredict``). Every field is a
flag of the command line (``rnnkit.options``); standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ...files import check_encoding
from ...options import check, option
from ..spec import ReadText

POOLINGS = ("last", "max", "mean", "attention")
FORMATS = ("csv", "tsv", "jsonl", "sst")


def _check_pooling(pooling: str) -> None:
    parts = pooling.split("+")
    if any(p not in POOLINGS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"pooling must be one or more of {'/'.join(POOLINGS)} joined by '+' (e.g. 'max+mean'), "
                         f"got {pooling!r}")


@dataclass
class ClassifierConfig:
    """The classifier's shape (saved in every checkpoint). The sizes the data fixes (classes,
    vocabulary or features, multi-label) have no flag; exactly one of ``num_embeddings`` (token
    ids) and ``input_size`` (numeric features) is set. ``top_hidden_size`` is the top layer's size
    where it differs (a tied language model's)."""

    num_classes: int = option(help="output size", min=1, cli=False)
    num_embeddings: int = option(0, help="vocabulary size of token-id input (0: numeric input)", min=0, cli=False)
    input_size: int = option(0, help="features per step of numeric input (0: token ids)", min=0, cli=False)
    embedding_size: int = option(128, help="embedding size", min=1)
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn", "rnn_relu"))
    hidden_size: int = option(128, help="hidden size per direction", min=1)
    num_layers: int = option(1, flag="--layers", help="recurrent layers", min=1)
    bidirectional: bool = option(True, flag="--unidirectional", help="forward direction only",
                                 default_text="bidirectional")
    top_hidden_size: Optional[int] = option(None, help="hidden size of the top layer", min=1, cli=False)
    pooling: str = option("max+mean+last", help="last, max, mean, attention or a '+' concatenation",
                          valid=_check_pooling)
    dropout: float = option(0.0, help="dropout on embeddings, between layers and before the classifier", min=0,
                            below=1)
    word_dropout: float = option(0.0, help="in training, replace each token by <unk> with this probability",
                                 min=0, below=1)
    attention_size: int = option(64, help="width of the additive attention's hidden layer (attention pooling)",
                                 min=1)
    multi_label: bool = option(False, help="independent sigmoid outputs instead of a softmax", cli=False)

    def __post_init__(self):
        check(self)
        if (self.num_embeddings > 0) == (self.input_size > 0):
            raise ValueError("set exactly one of num_embeddings (token ids) and input_size (numeric features)")
        if self.word_dropout and not self.num_embeddings:
            raise ValueError("word_dropout is for token input; numeric sequences have no words to drop")

    @property
    def poolings(self) -> List[str]:
        return self.pooling.split("+")

    def layer_sizes(self) -> List[int]:
        """Hidden size of each layer, bottom to top."""
        sizes = [self.hidden_size] * self.num_layers
        sizes[-1] = self.top_hidden_size or self.hidden_size
        return sizes


#: ClassifyData fields that only text input reads (refused with numeric sequences).
TEXT_FIELDS = ("fmt", "text_col", "header", "encoding", "tokens", "lowercase", "min_freq", "max_vocab",
               "bpe_vocab_size")


@dataclass
class ClassifyData:
    """How files become examples and batches. Texts are read by ``rnnkit.data.read_labelled``
    (``fmt`` ... ``label_sep``) and tokenised by a ``TextEncoder`` (``tokens`` ...
    ``bpe_vocab_size``); numeric sequences by ``rnnkit.data.read_sequences``."""

    fmt: Optional[str] = option(None, flag="--format", help="file format", choices=FORMATS,
                                default_text="from the suffix, else SST 'LABEL SENTENCE' lines")
    text_col: Optional[str] = option(None, help="text column name or 0-based number", default_text="'text', or 0")
    label_col: Optional[str] = option(None, help="label column name or 0-based number",
                                      default_text="'label', or 1")
    header: Optional[bool] = option(None, flag="--no-header", const=False, help="CSV/TSV files have no header row")
    encoding: str = option("utf-8", help="text encoding of the files", valid=check_encoding, metavar="CODEC")
    multi_label: bool = option(False, help="several labels per example")
    label_sep: str = option(",", help="separator of multiple labels")
    sequences: bool = option(False, help="the files hold numeric sequences (long CSV id,t,features...,label or "
                                         ".npz)")
    tokens: str = option("word", help="tokens", choices=("word", "char", "bpe"),
                         default_text="word; with --init-from, the language model's")
    lowercase: bool = option(True, help="keep the case of the text", default_text="lowercase")
    min_freq: int = option(1, help="rarer tokens become <unk>", min=1)
    max_vocab: Optional[int] = option(None, help="at most this many token ids", min=1, default_text="all")
    bpe_vocab_size: int = option(8000, help="BPE vocabulary size", min=1)
    batch_size: int = option(32, help="examples per batch (batches of similar length)", min=1)
    valid_fraction: float = option(0.1, help="held out (seeded) from --data when there is no --valid", above=0,
                                   below=1)

    def __post_init__(self):
        check(self)

    def reader(self) -> dict:
        """What reading a file depends on (saved, so evaluation reads test files the same way)."""
        keys = ("fmt", "text_col", "label_col", "header", "encoding", "multi_label", "label_sep", "sequences")
        return {key: getattr(self, key) for key in keys}


@dataclass
class ClassifyFit:
    """``fit``'s other options: class weights and transfer from a language model."""

    class_weights: Optional[str] = option(None, help="weight the loss by inverse class frequency",
                                          choices=("balanced",), default_text="unweighted")
    init_from: Optional[str] = option(None, metavar="LMDIR", default_text="random initialisation",
                                      help="initialise from a language-model run (its vocabulary, embedding and "
                                           "layers; ULMFiT's discriminative lrs and gradual unfreezing)")

    def __post_init__(self):
        check(self)


@dataclass
class ClassifyEvaluate(ReadText):
    """How ``rnnkit evaluate`` reads a classifier's test file (as in training unless given) and
    where it writes the confusion matrix."""

    text_col: Optional[str] = option(None, help="text column", default_text="as in training")
    label_col: Optional[str] = option(None, help="label column", default_text="as in training")
    fmt: Optional[str] = option(None, flag="--format", help="file format", choices=FORMATS,
                                default_text="as in training")
    plot: Optional[str] = option(None, metavar="PNG", help="write the confusion matrix here",
                                 default_text="confusion_matrix.png in the --checkpoint directory")

    def __post_init__(self):
        check(self)


@dataclass
class ClassifyPredict:
    """What ``rnnkit predict`` shows besides a classifier's labels."""

    explain: bool = option(False, help="also show each token's importance: attention weights, or gradient x "
                                       "embedding")

    def __post_init__(self):
        check(self)
