"""Files -> tokens -> batches."""

from .text import EOS, UNK, StreamBatches, Vocabulary, read_chunks, tokenize_file

__all__ = ["Vocabulary", "StreamBatches", "read_chunks", "tokenize_file", "UNK", "EOS"]
