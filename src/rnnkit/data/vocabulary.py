"""Tokens and their ids, for every task: one ``Vocabulary`` with configurable special tokens.

- ``Vocabulary``: characters, whitespace-split words, or BPE subwords (HuggingFace ``tokenizers``),
  special tokens first. Language models use ``<unk>`` and ``<eos>`` (each finished line ends in
  ``<eos>``), classifiers ``<pad>`` = 0 and ``<unk>`` = 1. Saved as JSON inside every checkpoint.
- ``TextEncoder``: the classification view of a vocabulary with ``<pad>``, ``<unk>`` first:
  token-id lists that are never empty.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .bpe import SPACE, train_bpe
from .text import whole_lines

PAD, UNK, BOS, EOS, BLANK = "<pad>", "<unk>", "<bos>", "<eos>", "<blank>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, BLANK)
PAD_ID, UNK_ID = 0, 1                      # the ids of a TextEncoder's specials
KINDS = ("char", "word", "bpe")
BPE_VOCAB_SIZE = 8000
DEFAULT_SPECIALS = {"char": (), "word": (UNK, EOS), "bpe": (UNK, EOS)}      # a language model's


class Vocabulary:
    """Tokens and their ids.

    Args:
        kind: ``"char"``, ``"word"`` or ``"bpe"`` (subwords learnt by byte-pair encoding).
        tokens: id -> token, the special tokens first (a bpe vocabulary reads them from ``tokenizer``).
        specials: the special tokens, ``tokens[:len(specials)]``; None: the leading run of tokens
            that are in ``SPECIAL_TOKENS`` (how vocabularies saved by earlier releases are read).
        lowercase: text is lower-cased before it is split (bpe: by the tokenizer's normaliser).
        tokenizer: the ``tokenizers.Tokenizer`` of a bpe vocabulary. A BPE token that begins a word
            starts with ``SPACE`` ("▁") when the tokenizer keeps spaces (language models).

    Attributes: ``index`` (token -> id); ``pad_id``, ``unk_id``, ``bos_id``, ``eos_id``, ``blank_id``
    (None when the vocabulary lacks that special token).

    Example::

        >>> vocab = Vocabulary.build(["a cat\\na dog\\n"], "word")       # <unk>, <eos>, a, cat, dog
        >>> vocab.encode("a cow\\n").tolist()                              # [2, 0, 1]
        >>> vocab.decode([2, 3, 1])                                       # 'a cat\\n'
    """

    def __init__(self, kind: str, tokens: Optional[Sequence[str]] = None, *,
                 specials: Optional[Sequence[str]] = None, lowercase: bool = False, tokenizer=None):
        _check_kind(kind)
        if (tokenizer is None) == (kind == "bpe"):
            raise ValueError("give a tokenizer for a bpe vocabulary, and only for bpe")
        if kind == "bpe":
            vocab = tokenizer.get_vocab()
            tokens = sorted(vocab, key=vocab.get)
        self.kind, self.tokens, self.tokenizer, self.lowercase = kind, list(tokens or ()), tokenizer, bool(lowercase)
        self.specials = _leading_specials(self.tokens) if specials is None else tuple(specials)
        if tuple(self.tokens[:len(self.specials)]) != self.specials:
            raise ValueError(f"the tokens must begin with the special tokens {self.specials}, "
                             f"got {tuple(self.tokens[:len(self.specials)])}")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({self.kind!r}, {len(self)} tokens, specials={self.specials}, lowercase={self.lowercase})"

    def _special_id(self, token: str) -> Optional[int]:
        return self.index[token] if token in self.specials else None

    pad_id = property(lambda self: self._special_id(PAD), doc="Id of ``<pad>``, or None.")
    unk_id = property(lambda self: self._special_id(UNK), doc="Id of ``<unk>``, or None.")
    bos_id = property(lambda self: self._special_id(BOS), doc="Id of ``<bos>``, or None.")
    eos_id = property(lambda self: self._special_id(EOS), doc="Id of ``<eos>``, or None.")
    blank_id = property(lambda self: self._special_id(BLANK), doc="Id of ``<blank>``, or None.")

    @classmethod
    def build(cls, chunks: Iterable[str], kind: str = "char", *, specials: Optional[Sequence[str]] = None,
              min_freq: int = 1, max_size: Optional[int] = None, lowercase: bool = False,
              keep_spaces: Optional[bool] = None) -> "Vocabulary":
        """Learn the vocabulary of text ``chunks`` (strings of any size: ``read_chunks(path)``, or texts).

        Args:
            specials: default ``()`` for char, ``(UNK, EOS)`` for word and bpe (a language model's).
                With ``<eos>`` among them words are counted (and BPE learnt) line by line over the
                whole text, each finished line ending in ``<eos>``; otherwise per chunk (one text each).
            min_freq, max_size: char and word tokens are ranked by frequency, then alphabetically;
                those seen fewer than ``min_freq`` times, or beyond ``max_size`` ids in all (specials
                included), are left out (read as ``<unk>``). Kept characters are sorted.
                bpe: a BPE model of ``max_size`` tokens (default ``BPE_VOCAB_SIZE``).
            keep_spaces: bpe only (see ``train_bpe``); None: True when ``<eos>`` is a special (text
                that is generated and decoded again), else False (words split on white space and
                punctuation, as classifiers read them).
        """
        _check_kind(kind)
        specials = DEFAULT_SPECIALS[kind] if specials is None else tuple(specials)
        by_line = EOS in specials
        if kind == "bpe":
            if UNK not in specials:
                raise ValueError(f"a bpe vocabulary needs {UNK} among its special tokens, got {specials}")
            texts = (piece.split("\n")[:-1] for piece in whole_lines(chunks)) if by_line else chunks
            tokenizer = train_bpe(texts, max_size or BPE_VOCAB_SIZE, list(specials), unk_token=UNK,
                                  lowercase=lowercase, keep_spaces=by_line if keep_spaces is None else keep_spaces)
            return cls(kind, tokenizer=tokenizer, specials=specials, lowercase=lowercase)
        counts = Counter()
        for piece in whole_lines(chunks) if by_line and kind == "word" else chunks:
            piece = piece.lower() if lowercase else piece
            counts.update(piece if kind == "char" else piece.split())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [token for token, count in ranked if count >= min_freq and token not in specials]
        if max_size is not None:
            kept = kept[:max(0, max_size - len(specials))]
        if not kept and not specials:
            raise ValueError("the text has no tokens to build a vocabulary from")
        return cls(kind, list(specials) + (sorted(kept) if kind == "char" else kept), specials=specials,
                   lowercase=lowercase)

    # --- text -> ids -----------------------------------------------------------------------------

    def split(self, text: str) -> List[str]:
        """The token strings of ``text``: its characters, its words, or its BPE subwords; with ``<eos>``
        a special, ``<eos>`` after each finished line (none after a last line without a newline)."""
        if self.kind == "bpe":
            return [self.tokens[i] for i in self.encode(text)]
        text = text.lower() if self.lowercase else text
        if self.kind == "char":
            return list(text)
        if EOS not in self.specials:
            return text.split()
        *lines, last = text.split("\n")
        return [token for line in lines for token in line.split() + [EOS]] + last.split()

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids (int32) of ``tokens``; unknown tokens become ``<unk>``.

        Raises:
            ValueError: the vocabulary has no ``<unk>`` and lacks some of ``tokens`` (named).
        """
        unk = self.unk_id
        if unk is None:
            missing = sorted({token for token in tokens if token not in self.index})
            if missing:
                what, named = (("characters", repr("".join(missing))) if self.kind == "char"
                               else ("words", ", ".join(map(repr, missing))))
                raise ValueError(f"{what} not in the vocabulary: {named}; this vocabulary has no {UNK}: "
                                 f"remove those {what} from the text")
        return np.fromiter((self.index.get(token, unk) for token in tokens), dtype=np.int32, count=len(tokens))

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32) of ``text``: ``ids(split(text))``."""
        if self.kind != "bpe":
            return self.ids(self.split(text))
        if EOS not in self.specials:
            return np.array(self.tokenizer.encode(text).ids, dtype=np.int32)
        *lines, last = text.split("\n")
        eos = self.eos_id
        ids = [i for encoding in self.tokenizer.encode_batch(lines + [last]) for i in encoding.ids + [eos]]
        return np.array(ids[:-1], dtype=np.int32)

    # --- ids -> text -----------------------------------------------------------------------------

    def decode(self, ids, previous: str = "") -> str:
        """Text of token ids following text that ends in ``previous``: ``<eos>`` is a newline,
        ``<pad>``, ``<bos>`` and ``<blank>`` are nothing.

        Decoding token by token, each call given the text so far, gives the same text as decoding
        all the ids at once: words are separated by one space, and no line begins with a space.
        """
        pieces = []
        for i in ids:
            i = int(i)
            piece = self._piece(self.tokens[i], i < len(self.specials))
            if self.kind != "char" and previous in ("", "\n", " ") and piece.startswith(" "):
                piece = piece[1:]                      # a line, or the text, does not begin with a space
            pieces.append(piece)
            previous = (previous + piece)[-1:]
        return "".join(pieces)

    def _piece(self, token: str, special: bool) -> str:
        if special and token != UNK:
            return "\n" if token == EOS else ""
        if self.kind == "char":
            return token
        return token.replace(SPACE, " ") if self.kind == "bpe" else " " + token

    def count_chars(self, previous, ids) -> Optional[int]:
        """Characters of text that the token ids ``ids`` stand for, each following the token id at the
        same place of ``previous`` (arrays of one shape), so that bits per character compare with
        character models; None for words (``<unk>`` hides them).

        BPE: a token's characters with ``SPACE`` as a space, but not at the start of a line (after
        ``<eos>``); ``<eos>`` is the newline; ``<unk>`` one character. This counts the text with runs of
        white space as one space, as the model reads it.
        """
        if self.kind != "bpe":
            return None if self.kind == "word" else int(np.size(ids))
        ids, previous = np.asarray(ids), np.asarray(previous)
        lengths, starts_word = self._char_table
        after_eos = previous == self.eos_id if self.eos_id is not None else np.zeros(previous.shape, dtype=bool)
        return int(lengths[ids].sum() - (starts_word[ids] & after_eos).sum())

    @cached_property
    def _char_table(self) -> Tuple[np.ndarray, np.ndarray]:
        # (characters of each BPE token id, whether it begins with SPACE)
        special = {UNK: 1, EOS: 1}                           # <pad>, <bos>, <blank>: none
        lengths = [special.get(token, 0) if i < len(self.specials) else len(token)
                   for i, token in enumerate(self.tokens)]
        return np.array(lengths, dtype=np.int64), np.array([t.startswith(SPACE) for t in self.tokens])

    # --- saving ----------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON: ``kind``, ``specials``, ``lowercase``, and ``tokens`` (bpe: ``tokenizer``, its JSON)."""
        data = {"kind": self.kind, "specials": list(self.specials), "lowercase": self.lowercase}
        if self.kind == "bpe":
            return {**data, "tokenizer": self.tokenizer.to_str()}
        return {**data, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        """The vocabulary of ``to_dict``, or of what earlier releases saved: a language model's
        ``{"kind", "tokens" | "tokenizer"}`` or a classifier's ``{"kind", "lowercase", "tokens" |
        "tokenizer"}`` (special tokens: the leading run of ``SPECIAL_TOKENS``)."""
        specials, lowercase = data.get("specials"), bool(data.get("lowercase", False))
        if data["kind"] == "bpe":
            from tokenizers import Tokenizer
            return cls("bpe", tokenizer=Tokenizer.from_str(data["tokenizer"]), specials=specials, lowercase=lowercase)
        return cls(data["kind"], list(data["tokens"]), specials=specials, lowercase=lowercase)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")


def _leading_specials(tokens: Sequence[str]) -> Tuple[str, ...]:
    """The leading run of ``tokens`` that are special tokens."""
    count = 0
    while count < len(tokens) and tokens[count] in SPECIAL_TOKENS:
        count += 1
    return tuple(tokens[:count])


class TextEncoder:
    """Text -> token ids for classification: ``"word"`` (whitespace-split), ``"char"`` or ``"bpe"``.

    A view of a ``Vocabulary`` whose special tokens begin with ``<pad>`` (id 0) and ``<unk>`` (id 1).
    Build with ``TextEncoder.build(texts, ...)``; ``to_dict``/``from_dict`` (the vocabulary's) save
    it inside a checkpoint.

    Args:
        vocabulary: the ``Vocabulary``.

    Example::

        >>> encoder = TextEncoder.build(["a fine film", "a dull film"])     # <pad>, <unk>, a, film, ...
        >>> encoder.encode("A FINE show")                                 # [2, 5, 1]
    """

    pad_id, unk_id = PAD_ID, UNK_ID

    def __init__(self, vocabulary: Vocabulary):
        if vocabulary.specials[:2] != (PAD, UNK):
            raise ValueError(f"a TextEncoder's vocabulary begins with {PAD}, {UNK}; got specials {vocabulary.specials}")
        self.vocabulary = vocabulary

    @classmethod
    def build(cls, texts: List[str], kind: str = "word", *, lowercase: bool = True, min_freq: int = 1,
              max_size: Optional[int] = None, bpe_vocab_size: int = 8000) -> "TextEncoder":
        """Learn the vocabulary of ``texts``.

        word/char: tokens ordered by frequency, then alphabetically (characters sorted); those seen
        fewer than ``min_freq`` times, or beyond ``max_size`` ids in all, become ``<unk>``.
        bpe: a BPE model of ``bpe_vocab_size`` tokens over whitespace/punctuation-split words.
        """
        return cls(Vocabulary.build(texts, kind, specials=(PAD, UNK), min_freq=min_freq, lowercase=lowercase,
                                    max_size=bpe_vocab_size if kind == "bpe" else max_size))

    @classmethod
    def from_tokens(cls, kind: str, tokens: Sequence[str], *, lowercase: bool = False) -> "TextEncoder":
        """An encoder of ``<pad>``, ``<unk>`` and then ``tokens`` (any ``<pad>``, ``<unk>`` among them
        left out): a language model's vocabulary for a classifier initialised from it."""
        rest = [token for token in tokens if token not in (PAD, UNK)]
        return cls(Vocabulary(kind, [PAD, UNK] + rest, specials=(PAD, UNK), lowercase=lowercase))

    kind = property(lambda self: self.vocabulary.kind, doc='"word", "char" or "bpe".')
    lowercase = property(lambda self: self.vocabulary.lowercase, doc="Whether text is lower-cased first.")
    vocab = property(lambda self: self.vocabulary.tokens, doc="id -> token.")
    index = property(lambda self: self.vocabulary.index, doc="token -> id.")

    def __len__(self) -> int:
        return len(self.vocabulary)

    def tokens(self, text: str) -> List[str]:
        """The token strings of ``text``, one per id of ``encode`` (an unknown word is shown as it is)."""
        return self.vocabulary.split(text) or [UNK]

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text``; never empty (no tokens at all give ``[UNK_ID]``)."""
        return self.vocabulary.encode(text).tolist() or [UNK_ID]

    def to_dict(self) -> dict:
        return self.vocabulary.to_dict()

    @classmethod
    def from_dict(cls, data: dict) -> "TextEncoder":
        return cls(Vocabulary.from_dict(data))
