"""Text files for language models: reading them, a token stream on disk, and truncated-BPTT windows.

- ``read_chunks``: a text file decoded in chunks, line ends made ``\\n``; ``whole_lines`` re-cuts
  chunks at line ends.
- ``tokenize_file``: a text file, read in chunks, becomes a memory-mapped ``int32`` array on disk
  (through a ``rnnkit.data.Vocabulary``), so corpora larger than memory train.
- ``StreamBatches``: the token stream cut into B parallel streams, served as ``Window`` s of
  ``bptt`` steps (``y`` is ``x`` shifted by one), optionally of random length (AWD-LSTM), the same
  windows for the same epoch every time (exact resume).
"""

from __future__ import annotations

import codecs
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, List, Tuple

import numpy as np
import torch

from ..files import atomic_write, check_encoding

if TYPE_CHECKING:
    from .vocabulary import Vocabulary

CHUNK_CHARS = 1 << 20
NAMED_UNKNOWN = 10                       # distinct characters a warning about <unk> names at most


def read_chunks(path: Path, encoding: str = "utf-8", chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """Decoded text of ``path`` in chunks (multi-byte characters never split), with ``\\r\\n`` and a
    lone ``\\r`` made ``\\n`` (universal newlines, also when a ``\\r\\n`` straddles two chunks).

    Raises:
        ValueError: the encoding is unknown, or the file is missing, empty, or not valid in
            ``encoding`` (with the byte offset).
    """
    check_encoding(encoding)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: give a text file with some content")
    decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder(encoding)(), translate=True)
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


def whole_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Text ``chunks`` re-cut into pieces of whole lines, each ending in its newline (a line may span
    chunks; a last line without one gets one, a last line of white space only is dropped)."""
    pending = ""
    for chunk in chunks:
        lines, newline, pending = (pending + chunk).rpartition("\n")
        if newline:
            yield lines + newline
    if pending.strip():
        yield pending + "\n"


def tokenize_file(path: Path, vocab: "Vocabulary", out_path: Path, encoding: str = "utf-8",
                  chunk_chars: int = CHUNK_CHARS) -> np.memmap:
    """Encode ``path`` into ``out_path`` (raw int32) chunk by chunk; return it memory-mapped, read-only.

    Characters go chunk by chunk, words and subwords line by line. The file is written atomically
    (``rnnkit.files.atomic_write``). Characters a character vocabulary lacks are read as ``<unk>``,
    with one warning naming them, or, without ``<unk>``, raise ValueError.
    """
    out_path = Path(out_path)
    chunks = read_chunks(path, encoding, chunk_chars)
    unknown = Counter()                                          # characters read as <unk>
    with atomic_write(out_path, binary=True) as handle:
        for piece in chunks if vocab.kind == "char" else whole_lines(chunks):
            handle.write(_encode(vocab, piece, unknown).tobytes())
    if unknown:
        _warn_unknown(path, unknown)
    if out_path.stat().st_size == 0:
        raise ValueError(f"{path} has no tokens")
    return np.memmap(out_path, dtype=np.int32, mode="r")


def _encode(vocab: "Vocabulary", piece: str, unknown: Counter) -> np.ndarray:
    # (N,) int32 ids of ``piece``; a character vocabulary's unknown characters are added to ``unknown``.
    if vocab.kind != "char" or vocab.unk_id is None:
        return vocab.encode(piece)
    tokens = vocab.split(piece)
    ids = vocab.ids(tokens)
    unknown.update(tokens[i] for i in np.flatnonzero(ids == vocab.unk_id))
    return ids


def _warn_unknown(path: Path, unknown: Counter) -> None:
    named = [char for char, _ in unknown.most_common(NAMED_UNKNOWN)]
    more = ", ..." if len(unknown) > NAMED_UNKNOWN else ""
    count = sum(unknown.values())
    warnings.warn(f"{path}: {count} character{'s' if count != 1 else ''} not in the vocabulary "
                  f"({', '.join(map(repr, named))}{more}) {'were' if count != 1 else 'was'} read as <unk>",
                  stacklevel=3)


class StreamBatches:
    """B parallel token streams served as truncated-BPTT windows.

    Args:
        tokens: 1-D array of ids (a memmap is fine: nothing is copied until a window is served).
        batch_size: B, the number of parallel streams (the hidden state of stream b carries over
            from one window to the next).
        bptt: window length. random_length: AWD-LSTM's variable windows (``bptt`` with probability
            0.95, else ``bptt / 2``, then N(., 5)), drawn from ``seed + epoch``.

    Calling ``batches(epoch)`` yields that epoch's ``Window`` s; ``len(batches)`` is the number of
    windows of epoch 0 (of every epoch without ``random_length``).
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

    def __len__(self) -> int:
        return len(self.windows(0))

    def __call__(self, epoch: int = 0) -> Iterator["Window"]:
        for start, length in self.windows(epoch):
            block = torch.from_numpy(np.array(self.streams[:, start:start + length + 1].T, order="C"))  # a copy: a memmap is read-only
            yield Window(block[:-1].long(), block[1:].long(), start)                   # (L, B) each


@dataclass
class Window:
    """One truncated-BPTT window, time-major.

    Attributes:
        x: (L, B) int64 input ids. y: (L, B) int64 targets, ``x`` shifted by one step.
        start: the window's offset in the streams (0: a new pass over the text, so the carried
            hidden state resets).

    ``x`` and ``y`` split over processes along dim 1 (``batch_dim`` metadata, read by
    ``rnnkit.train.distributed.shard``). A window unpacks as ``x, y, start`` too.
    """

    x: torch.Tensor = field(metadata={"batch_dim": 1})                              # (L, B)
    y: torch.Tensor = field(metadata={"batch_dim": 1})                              # (L, B)
    start: int = 0

    def __iter__(self) -> Iterator:
        return iter((self.x, self.y, self.start))
