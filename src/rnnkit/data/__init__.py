"""Files -> tokens -> batches."""

from .batching import Batch, BucketBatches, map_tensors, pad
from .labelled import LabelledTexts, read_labelled
from .labels import Labels
from .sequences import LabelledSequences, digits_rows, read_mnist_idx, read_sequences
from .text import StreamBatches, Window, read_chunks, tokenize_file
from .vocabulary import (BLANK, BOS, EOS, PAD, PAD_ID, SPECIAL_TOKENS, UNK, UNK_ID, TextEncoder,
                         Vocabulary)

__all__ = ["Vocabulary", "TextEncoder", "PAD", "UNK", "BOS", "EOS", "BLANK", "SPECIAL_TOKENS", "PAD_ID", "UNK_ID",
           "StreamBatches", "Window", "read_chunks", "tokenize_file", "Batch", "pad", "BucketBatches", "map_tensors",
           "LabelledTexts", "read_labelled", "Labels",
           "LabelledSequences", "read_sequences", "digits_rows", "read_mnist_idx"]
