"""Text for language models: vocabularies, a token stream on disk, and truncated-BPTT windows.

- ``Vocabulary``: characters, words with ``<unk>`` and ``<eos>`` (Penn Treebank style), or BPE
  subwords (HuggingFace ``tokenizers``) with the same two. Saved as JSON with the model.
- ``tokenize_file``: a UTF-8 file, read in chunks, becomes a memory-mapped ``int32`` array on disk,
  so corpora larger than memory train.
- ``StreamBatches``: the token stream cut into B parallel streams, served as ``(x, y)`` windows of
  ``bptt`` steps (``y`` is ``x`` shifted by one), optionally of random length (AWD-LSTM), the same
  windows for the same epoch every time (exact resume).
"""

from __future__ import annotations

import codecs
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch

from .bpe import SPACE, train_bpe

UNK, EOS = "<unk>", "<eos>"
KINDS = ("char", "word", "bpe")
BPE_VOCAB_SIZE = 8000
CHUNK_CHARS = 1 << 20


def read_chunks(path: Path, encoding: str = "utf-8", chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """Decoded text of ``path`` in chunks (multi-byte characters never split).

    Raises:
        ValueError: the file is missing, empty, or not valid in ``encoding`` (with the byte offset).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: give a text file with some content")
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as handle:
        while True:
            raw = handle.read(chunk_chars)
            pending = len(decoder.getstate()[0])          # bytes of a character begun in the last chunk
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                where = offset - pending + error.start
                raise ValueError(f"{path} is not valid {encoding}: byte 0x{error.object[error.start]:02x} at "
                                 f"offset {where}; pass --encoding (for example latin-1)") from None
            offset += len(raw)
            if text:
                yield text
            if not raw:
                return


@dataclass
class Vocabulary:
    """Tokens and their ids.

    Attributes:
        kind: ``"char"``, ``"word"`` or ``"bpe"`` (subwords learnt by byte-pair encoding).
        tokens: id -> token. Word and BPE vocabularies begin with ``<unk>`` and ``<eos>``; each line
            ends in ``<eos>``. A BPE token that begins a word starts with ``SPACE`` ("▁").
        tokenizer: the ``tokenizers.Tokenizer`` of a BPE vocabulary (its tokens are read from it).
    """

    kind: str
    tokens: List[str] = field(default_factory=list)
    tokenizer: Any = field(default=None, repr=False)
    index: dict = field(init=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        if (self.tokenizer is None) == (self.kind == "bpe"):
            raise ValueError("give a tokenizer for a bpe vocabulary, and only for bpe")
        if self.kind == "bpe":
            vocab = self.tokenizer.get_vocab()
            self.tokens = sorted(vocab, key=vocab.get)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, chunks, kind: str = "char", min_freq: int = 1, max_size: Optional[int] = None) -> "Vocabulary":
        """Learn the vocabulary of text ``chunks`` (an iterable of strings, e.g. ``read_chunks(path)``).

        char, word: tokens ordered by frequency, then alphabetically; words below ``min_freq`` or beyond
        ``max_size`` become ``<unk>``. bpe: a BPE model of ``max_size`` tokens (default
        ``BPE_VOCAB_SIZE``) learnt line by line; runs of white space count as one space.
        """
        if kind == "bpe":
            tokenizer = train_bpe((piece.split("\n")[:-1] for piece in _pieces(chunks, kind)),
                                  max_size or BPE_VOCAB_SIZE, [UNK, EOS], unk_token=UNK, keep_spaces=True)
            return cls(kind, tokenizer=tokenizer)
        counts = Counter()
        for piece in _pieces(chunks, kind):
            counts.update(piece if kind == "char" else piece.split())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [token for token, count in ranked if count >= min_freq and token not in (UNK, EOS)]
        if kind == "word":
            kept = [UNK, EOS] + kept
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError("the text has no tokens to build a vocabulary from")
        return cls(kind, kept if kind == "word" else sorted(kept))

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32) of ``text``: its characters, or its words or subwords with ``<eos>`` after
        each finished line (none after a last line without a newline, such as a prompt)."""
        if self.kind == "char":
            return self.ids(list(text))
        *lines, last = text.split("\n")
        if self.kind == "word":
            return self.ids([token for line in lines for token in line.split() + [EOS]] + last.split())
        eos = self.index[EOS]
        ids = [i for encoding in self.tokenizer.encode_batch(lines + [last]) for i in encoding.ids + [eos]]
        return np.array(ids[:-1], dtype=np.int32)

    def ids(self, tokens: List[str]) -> np.ndarray:
        """Token ids (int32) of ``tokens``. Characters the vocabulary lacks raise ValueError naming
        them; unknown words or subwords become ``<unk>``."""
        if self.kind == "char":
            missing = sorted({ch for ch in tokens if ch not in self.index})
            if missing:
                raise ValueError(f"characters not in the vocabulary: {''.join(missing)!r}")
            return np.fromiter((self.index[ch] for ch in tokens), dtype=np.int32, count=len(tokens))
        unk = self.index[UNK]
        return np.fromiter((self.index.get(w, unk) for w in tokens), dtype=np.int32, count=len(tokens))

    def decode(self, ids, previous: str = "") -> str:
        """Text of token ids (``<eos>`` becomes a newline) following text that ends in ``previous``.

        Decoding token by token, each call given the text so far, gives the same text as decoding
        all the ids at once: words are separated by one space, and no line begins with a space.
        """
        pieces = []
        for i in ids:
            token = self.tokens[int(i)]
            if self.kind == "char":
                piece = token
            elif token == EOS:
                piece = "\n"
            else:
                piece = token.replace(SPACE, " ") if self.kind == "bpe" else " " + token
                if previous in ("", "\n", " ") and piece.startswith(" "):
                    piece = piece[1:]                  # a line, or the text, does not begin with a space
            pieces.append(piece)
            previous = (previous + piece)[-1:]
        return "".join(pieces)

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
        eos = self.index[EOS]
        lengths, starts_word = self._char_table
        return int(lengths[ids].sum() - (starts_word[ids] & (previous == eos)).sum())

    @cached_property
    def _char_table(self) -> Tuple[np.ndarray, np.ndarray]:
        # (characters of each BPE token id, whether it begins with SPACE)
        lengths = [1 if token in (EOS, UNK) else len(token) for token in self.tokens]
        return np.array(lengths, dtype=np.int64), np.array([t.startswith(SPACE) for t in self.tokens])

    def to_dict(self) -> dict:
        if self.kind == "bpe":
            return {"kind": self.kind, "tokenizer": self.tokenizer.to_str()}
        return {"kind": self.kind, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        if data["kind"] == "bpe":
            from tokenizers import Tokenizer
            return cls("bpe", tokenizer=Tokenizer.from_str(data["tokenizer"]))
        return cls(data["kind"], list(data["tokens"]))


def _pieces(chunks, kind: str) -> Iterator[str]:
    # Text in pieces that encode on their own: characters as they come; otherwise whole lines, each
    # with its newline (a line may span chunks; a last line without one gets one).
    if kind == "char":
        yield from chunks
        return
    pending = ""
    for chunk in chunks:
        lines, newline, pending = (pending + chunk).rpartition("\n")
        if newline:
            yield lines + newline
    if pending.strip():
        yield pending + "\n"


def tokenize_file(path: Path, vocab: Vocabulary, out_path: Path, encoding: str = "utf-8",
                  chunk_chars: int = CHUNK_CHARS) -> np.memmap:
    """Encode ``path`` into ``out_path`` (raw int32) chunk by chunk; return it memory-mapped, read-only.

    The file is written to ``out_path`` + ``.tmp`` and renamed when complete.
    """
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as handle:
        for piece in _pieces(read_chunks(path, encoding, chunk_chars), vocab.kind):
            handle.write(vocab.encode(piece).tobytes())
    tmp.replace(out_path)
    if out_path.stat().st_size == 0:
        raise ValueError(f"{path} has no tokens")
    return np.memmap(out_path, dtype=np.int32, mode="r")


class StreamBatches:
    """B parallel token streams served as truncated-BPTT windows.

    Args:
        tokens: 1-D array of ids (a memmap is fine: nothing is copied until a window is served).
        batch_size: B, the number of parallel streams (the hidden state of stream b carries over
            from one window to the next).
        bptt: window length. random_length: AWD-LSTM's variable windows (``bptt`` with probability
            0.95, else ``bptt / 2``, then N(., 5)), drawn from ``seed + epoch``.

    Calling ``batches(epoch)`` yields ``Window(x, y, start)``: int64 (L, B) tensors, ``y`` = ``x``
    shifted by one.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, bptt: int, *, random_length: bool = False,
                 seed: int = 0):
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size} and {bptt}")
        steps = len(tokens) // batch_size
        if steps < 2:
            raise ValueError(f"the text has {len(tokens)} tokens, too few for {batch_size} streams: "
                             f"need at least {2 * batch_size}; use a smaller batch size or more text")
        self.streams = np.asarray(tokens[: steps * batch_size]).reshape(batch_size, steps)     # (B, N)
        self.bptt, self.random_length, self.seed = bptt, random_length, seed

    def windows(self, epoch: int) -> List[Tuple[int, int]]:
        """(start, length) of each window of ``epoch``."""
        n = self.streams.shape[1] - 1
        rng = np.random.default_rng(self.seed + epoch)
        spans, start = [], 0
        while start < n:
            length = self.bptt
            if self.random_length:
                base = self.bptt if rng.random() < 0.95 else self.bptt / 2
                length = max(5, int(rng.normal(base, 5)))
            length = min(length, n - start)
            spans.append((start, length))
            start += length
        return spans

    def __call__(self, epoch: int) -> Iterator["Window"]:
        for start, length in self.windows(epoch):
            block = torch.from_numpy(np.ascontiguousarray(self.streams[:, start:start + length + 1].T))
            yield Window(block[:-1].long(), block[1:].long(), start)                   # (L, B) each


class Window(NamedTuple):
    """One truncated-BPTT window: inputs ``x`` (L, B), targets ``y`` (L, B), and ``start``, its
    offset in the streams (0: a new pass over the text, so the carried hidden state resets)."""

    x: torch.Tensor
    y: torch.Tensor
    start: int
