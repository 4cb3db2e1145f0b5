"""Files -> tokens -> batches."""

from .labelled import (PAD, Labels, LabelledSequences, LabelledTexts, TextEncoder, digits_rows,
                       read_labelled, read_mnist_idx, read_sequences)
from .text import EOS, UNK, StreamBatches, Vocabulary, Window, read_chunks, tokenize_file

__all__ = ["Vocabulary", "StreamBatches", "Window", "read_chunks", "tokenize_file", "UNK", "EOS",
           "LabelledTexts", "read_labelled", "Labels", "TextEncoder", "PAD",
           "LabelledSequences", "read_sequences", "digits_rows", "read_mnist_idx"]
