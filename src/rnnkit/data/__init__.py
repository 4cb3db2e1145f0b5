"""Files -> tokens -> batches."""

from .text import EOS, UNK, StreamBatches, Vocabulary, Window, read_chunks, tokenize_file

__all__ = ["Vocabulary", "StreamBatches", "Window", "read_chunks", "tokenize_file", "UNK", "EOS"]
