"""Byte-pair encoding with HuggingFace ``tokenizers``, shared by language models and classifiers."""

from __future__ import annotations

from typing import Iterable, List, Union

SPACE = "\u2581"          # "▁": marks a token that begins a word (a space before it), as in SentencePiece


def train_bpe(texts: Iterable[Union[str, List[str]]], vocab_size: int, special_tokens: List[str], *,
              unk_token: str = "<unk>", lowercase: bool = False, keep_spaces: bool = False):
    """A ``tokenizers.Tokenizer`` with a BPE model of at most ``vocab_size`` tokens learnt from ``texts``.

    Args:
        texts: strings, or lists of strings (batches), read once; only word counts are kept in memory.
        special_tokens: get the first ids, in this order; they include ``unk_token``, the id of
            characters never seen in training.
        keep_spaces: for text that is decoded again (language models): runs of white space become one
            space, words are split on spaces only and start with ``SPACE`` (Metaspace), and the
            tokenizer's decoder restores the spaces. Otherwise (classifiers) words are split on white
            space and punctuation, which are dropped.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=unk_token))
    steps = [normalizers.Lowercase()] if lowercase else []
    if keep_spaces:
        steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always")
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
