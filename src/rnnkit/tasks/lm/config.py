"""The language model's settings: its shape (``LMConfig``), how text becomes batches (``LMData``),
how it samples (``Sampling``) and how ``rnnkit evaluate`` reads a file (``LMEvaluate``).
Every field is a flag of the command line (``rnnkit.options``); standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ...files import check_encoding
from ...options import check, option
from ..spec import ReadText


@dataclass
class LMConfig:
    """The model's shape and regularisers (saved in every checkpoint).

    AWD-LSTM's regularisers are options: locked (variational) dropout between layers and on the
    embeddings, embedding dropout (whole words), weight drop on ``W_hh``, and weight tying (the
    decoder reuses the embedding matrix; the last layer then has ``embedding_size`` units). For word
    vocabularies the decoder can be an adaptive softmax (``softmax_cutoffs``), which trains faster
    when the vocabulary is large.
    """

    vocab_size: int = option(help="number of tokens", min=1, cli=False)
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    embedding_size: int = option(256, help="embedding size", min=1)
    hidden_size: int = option(512, help="hidden size", min=1)
    num_layers: int = option(2, flag="--layers", help="recurrent layers", min=1)
    dropout: float = option(0.0, help="locked dropout on the layers' outputs (between layers and before the "
                                      "decoder)", min=0, below=1)
    input_dropout: float = option(0.0, help="locked dropout on the embeddings", min=0, below=1)
    embedding_dropout: float = option(0.0, help="drop whole words' embeddings", min=0, below=1)
    weight_drop: float = option(0.0, help="DropConnect on each layer's W_hh", min=0, below=1)
    tie_weights: bool = option(False, help="share the embedding and decoder weights")
    init_range: Optional[float] = option(None, help="initialise every weight uniformly in [-R, R], e.g. 0.1 "
                                                    "(Zaremba et al.)", above=0, metavar="R",
                                         default_text="each layer's own")
    softmax_cutoffs: Optional[List[int]] = option(
        None, flag="--adaptive-softmax", metavar="CUTOFFS", default_text="a full softmax",
        help="an adaptive softmax decoder for word tokens: the first id of each tail cluster, comma-separated, "
             "e.g. 2000,5000")

    def __post_init__(self):
        check(self)
        if self.softmax_cutoffs is not None:
            from rnnkit.nn.adaptive import check_cutoffs

            self.softmax_cutoffs = check_cutoffs(self.softmax_cutoffs, self.vocab_size)


@dataclass
class LMData:
    """How text files become batches of truncated-BPTT windows."""

    tokens: str = option("char", help="characters, words, or byte-pair-encoded subwords (learnt on the training "
                                      "text)", choices=("char", "word", "bpe"))
    vocab_size: Optional[int] = option(None, help="bpe: vocabulary size; word: most words kept, the rest become "
                                                  "<unk>", min=1, default_text="8000 for bpe, every word")
    encoding: str = option("utf-8", help="text encoding of the files", valid=check_encoding, metavar="CODEC")
    batch_size: int = option(32, help="parallel streams", min=1)
    bptt: int = option(64, help="truncated-BPTT window", min=1)
    random_length: bool = option(False, help="AWD-LSTM's random window lengths around --bptt")
    valid_fraction: float = option(0.1, help="held out from the end of --data when there is no --valid",
                                   above=0, below=1)

    def __post_init__(self):
        check(self)
        if self.vocab_size is not None and self.tokens == "char":
            raise ValueError("vocab_size (--vocab-size) is for word and bpe tokens: a character vocabulary holds "
                             "every character of the text")


@dataclass
class Sampling:
    """How text is drawn from the model (``rnnkit generate``, ``rnnkit predict``)."""

    length: int = option(200, help="tokens to generate", min=0)
    temperature: float = option(0.8, help="sampling temperature, 0 is greedy", min=0)
    top_k: Optional[int] = option(None, help="sample among the k likeliest tokens", min=1, default_text="all")
    top_p: Optional[float] = option(None, help="nucleus sampling: the smallest set of tokens with this "
                                               "probability", above=0, max=1, default_text="off")
    seed: Optional[int] = option(None, help="random seed for sampling", min=0, default_text="fresh randomness")

    def __post_init__(self):
        check(self)


@dataclass
class LMEvaluate(ReadText):
    """How ``rnnkit evaluate`` reads a text file for a language model: the text is cut into
    ``batch_size`` streams read in windows of ``bptt`` tokens, the state carried between windows."""

    bptt: int = option(256, help="window length (the state is carried from window to window)", min=1)
    batch_size: int = option(8, help="parallel streams", min=1)

    def __post_init__(self):
        check(self)
