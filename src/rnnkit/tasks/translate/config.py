"""The translator's settings: how sentence pairs become batches (``TranslateData``), the
encoder-decoder (``TranslatorConfig``), how it decodes (``Decoding``), and the flags of ``rnnkit
evaluate`` / ``predict`` for translators. Every field is a flag (``rnnkit.options``); standard
library only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...files import check_encoding
from ...options import check, option

ATTENTIONS = ("general", "dot", "additive", "none")


@dataclass
class TranslateData:
    """Where the sentence pairs are and how they become batches.

    Pairs come as two line-aligned plain-text files (``source``/``target``: Multi30k, WMT, OPUS), or
    as one file of pairs given to ``--data`` (TSV: source TAB target; JSON lines: ``{"source": ...,
    "target": ...}``, field names by ``source_field``/``target_field``). Both sides are split into
    byte-pair-encoded subwords learnt on the training text (HuggingFace ``tokenizers``); the
    vocabularies are saved in the checkpoint, and decoding gives plain text back.
    """

    source: Optional[str] = option(None, help="training source sentences, one per line", metavar="FILE",
                                   default_text="none: give it with --target, or --data")
    target: Optional[str] = option(None, help="training target sentences, line-aligned with --source",
                                   metavar="FILE", default_text="none")
    valid_source: Optional[str] = option(None, help="validation source sentences", metavar="FILE",
                                         default_text="1,000 training pairs held out, or 5% if fewer")
    valid_target: Optional[str] = option(None, help="validation target sentences", metavar="FILE",
                                         default_text="with --valid-source")
    source_field: str = option("source", help="--data as JSON lines: the source field")
    target_field: str = option("target", help="--data as JSON lines: the target field")
    vocab_size: int = option(8000, help="subword vocabulary size (each side's, or the joint one's)", min=50)
    joint_vocab: bool = option(False, help="one subword vocabulary learnt on both sides (and one embedding "
                                           "table, shared)")
    lowercase: bool = option(False, help="lower-case both sides first")
    max_length: int = option(100, help="training pairs with a side longer than this many subwords are left "
                                       "out (counted)", min=1)
    batch_size: int = option(64, help="sentence pairs per batch (batches hold pairs of similar length)", min=1)
    encoding: str = option("utf-8", help="text encoding of the files", valid=check_encoding, metavar="CODEC")

    def __post_init__(self):
        check(self)
        if (self.valid_source is None) != (self.valid_target is None):
            raise ValueError("give --valid-source and --valid-target together (or neither: pairs are held out "
                             "from the training data)")
        if (self.source is None) != (self.target is None):
            raise ValueError("give --source and --target together: two line-aligned files")


@dataclass
class TranslatorConfig:
    """The attention encoder-decoder (saved in every checkpoint).

    Encoder: an embedding and a stack of bidirectional rnnkit layers over the source (``lengths``
    given). A bridge turns its final states into the decoder's first state. Decoder: an embedding
    and a stack of unidirectional rnnkit layers; at each step, attention over the encoder outputs
    (padding masked) gives a context vector, and ``tanh(W [context; state])`` (Luong's attentional
    vector) gives the next token through an output projection (tied to the target embedding with
    ``tie_embeddings``). With ``input_feeding`` the attentional vector is also an input of the
    next step (Luong et al. 2015): more accurate, but the decoder then runs step by step in
    training too; without it the decoder's layers run over the whole target in one fused call.
    """

    source_vocab: int = option(help="source subword vocabulary size", min=1, cli=False)
    target_vocab: int = option(help="target subword vocabulary size", min=1, cli=False)
    cell: str = option("gru", help="recurrent cell", choices=("gru", "lstm", "rnn"))
    embedding_size: int = option(256, help="embedding size (both sides)", min=1)
    hidden_size: int = option(256, help="hidden size of the decoder and of each direction of the encoder", min=1)
    encoder_layers: int = option(2, help="bidirectional encoder layers", min=1)
    decoder_layers: int = option(1, help="decoder layers", min=1)
    attention: str = option("general", help="score of attention: Luong's general (h^T W s) or dot, Bahdanau's "
                                            "additive (v^T tanh(W h + U s)), or none (the bridge's state alone)",
                            choices=ATTENTIONS)
    input_feeding: bool = option(False, help="feed each step's attentional vector into the next step")
    bridge: bool = option(True, help="no bridge: the decoder starts from zeros", flag="--no-bridge",
                          default_text="a bridge from the encoder's final states")
    tie_embeddings: bool = option(True, help="separate target embedding and output projection",
                                  flag="--untied", default_text="tied")
    shared_embeddings: bool = option(False, help="one embedding table for both sides (a joint vocabulary)",
                                     cli=False)
    dropout: float = option(0.3, help="dropout on embeddings, between layers and before the output", min=0, below=1)
    label_smoothing: float = option(0.1, help="label smoothing of the training loss", min=0, below=1)
    pad_id: int = option(0, help="id of <pad> (both sides)", min=0, cli=False)
    bos_id: int = option(2, help="id of <bos> (target)", min=0, cli=False)
    eos_id: int = option(3, help="id of <eos> (both sides)", min=0, cli=False)

    def __post_init__(self):
        check(self)
        if self.shared_embeddings and self.source_vocab != self.target_vocab:
            raise ValueError("shared embeddings need one vocabulary for both sides (--joint-vocab)")


@dataclass
class Decoding:
    """How a translation is searched for: beam search over ``beam`` hypotheses per sentence (1:
    greedy), scored by log-probability divided by GNMT's length penalty ``((5 + |y|) / 6) ** alpha``,
    each at most ``max_length_ratio`` x the source length + 10 subwords."""

    beam: int = option(5, help="beam size; 1 is greedy decoding", min=1)
    length_penalty: float = option(1.0, help="GNMT's length penalty alpha (0: raw log-probability)", min=0,
                                   metavar="ALPHA")
    max_length_ratio: float = option(1.5, help="longest output: R x the source's subwords + 10", above=0,
                                     metavar="R")
    n_best: int = option(1, help="translations per sentence, best first, with their scores (at most --beam)",
                         min=1, metavar="K")
    decode_batch_size: int = option(64, help="sentences decoded together", min=1)

    def __post_init__(self):
        check(self)
        if self.n_best > self.beam:
            raise ValueError(f"n_best (--n-best {self.n_best}) must be at most the beam (--beam {self.beam})")


@dataclass
class TranslateEvaluate(Decoding):
    """``rnnkit evaluate`` of a translator: the test pairs, and what else to write."""

    source: Optional[str] = option(None, help="test source sentences, one per line (or --data pairs)",
                                   metavar="FILE", default_text="none")
    target: Optional[str] = option(None, help="test reference translations, line-aligned with --source",
                                   metavar="FILE", default_text="none")
    hypotheses: Optional[str] = option(None, help="also write the translations here, one per line", metavar="FILE",
                                       default_text="not written")
    plot_attention: Optional[int] = option(None, help="write the attention heat map of sentence N (from 1) as a "
                                                      "PNG", min=1, metavar="N", default_text="none")
    attention_png: Optional[str] = option(None, help="where --plot-attention writes its PNG", metavar="PNG",
                                          default_text="attention-N.png")

    def __post_init__(self):
        super().__post_init__()
        check(self)
        if (self.source is None) != (self.target is None):
            raise ValueError("give --source and --target together (or --data pairs)")


@dataclass
class TranslatePredict(Decoding):
    """``rnnkit predict`` of a translator: the sentences come as arguments or lines of ``--input``."""

    def __post_init__(self):
        super().__post_init__()
