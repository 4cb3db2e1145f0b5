"""Recordings as the engine's batches: waves in length buckets -> (augmented) waves -> log-mel
features -> SpecAugment, and the character units of CTC transcripts.

A ``Batch`` of speech has ``inputs`` (B, T, F) feature frames (zero-padded), ``lengths`` (B,)
frames, and ``labels``: (B,) class ids for the words head, or ``(targets (B, U), target_lengths
(B,))`` unit ids for CTC.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from rnnkit.data import BLANK, UNK, Batch, BucketBatches, pad

from .features import FeatureConfig, GlobalStats, add_noise, log_mel, pad_waves, spec_augment, speed_perturb


class Units:
    """The output units of a CTC model: ``<blank>`` (id 0), ``<unk>`` (id 1), then the characters
    (``kind="chars"``, the space among them) or the words (``kind="words"``: word-level CTC, for
    small vocabularies such as digits or commands) of the training transcripts, sorted.

    Example::

        units = Units.build(["one two", "three"])
        ids, unknown = units.encode("one")      # [.., .., ..], 0
        units.decode(ids)                       # "one"
    """

    blank_id, unk_id = 0, 1

    def __init__(self, symbols: Sequence[str], kind: str = "chars"):
        if kind not in ("chars", "words"):
            raise ValueError(f"units are 'chars' or 'words', got {kind!r}")
        self.kind = kind
        self.tokens: List[str] = [BLANK, UNK] + sorted(set(symbols) - {BLANK, UNK})
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Sequence[str], kind: str = "chars") -> "Units":
        symbols = set()
        for text in texts:
            symbols.update(cls._split(text, kind))
        if not symbols:
            raise ValueError("the training transcripts are empty: give transcripts to learn from")
        return cls(sorted(symbols), kind)

    @staticmethod
    def _split(text: str, kind: str) -> List[str]:
        return list(text) if kind == "chars" else text.split()

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> Tuple[List[int], List[str]]:
        """``(unit ids of text, the symbols of it that have no unit and became <unk>)``."""
        symbols = self._split(text, self.kind)
        ids = [self.index.get(s, self.unk_id) for s in symbols]
        return ids, [s for s, i in zip(symbols, ids) if i == self.unk_id]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of unit ids (blanks dropped; ``<unk>`` shown as it is)."""
        pieces = [self.tokens[i] for i in ids if i != self.blank_id]
        return "".join(pieces) if self.kind == "chars" else " ".join(pieces)

    def texts(self) -> List[str]:
        """The text of each id as a character decoder sees it (words end with a space)."""
        return self.tokens if self.kind == "chars" else [t + " " for t in self.tokens]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": self.tokens[2:]}

    @classmethod
    def from_dict(cls, saved: dict) -> "Units":
        return cls(saved["tokens"], saved["kind"])


class Augment:
    """Training augmentations: a speed factor per utterance (one of ``speeds``), white noise at an
    SNR drawn from ``[snr, snr + 20]`` dB, a VTLP frequency warp drawn from ``[1 - vtlp, 1 + vtlp]``,
    and SpecAugment's masks on the features."""

    def __init__(self, speeds: Sequence[float] = (), snr: Optional[float] = None, masks: bool = True,
                 vtlp: float = 0.0):
        if not 0 <= vtlp < 0.5:
            raise ValueError(f"the VTLP range must be in [0, 0.5), such as 0.1; got {vtlp}")
        self.speeds, self.snr, self.masks, self.vtlp = list(speeds), snr, masks, vtlp

    @property
    def varies(self) -> bool:
        """Whether an utterance's features change between epochs (so they cannot be cached)."""
        return bool(self.speeds) or self.snr is not None or self.vtlp > 0

    def warps(self, count: int, rng: np.random.Generator) -> Optional[List[float]]:
        """(count,) VTLP factors, or None without VTLP (drawing nothing)."""
        return list(rng.uniform(1 - self.vtlp, 1 + self.vtlp, count)) if self.vtlp > 0 else None

    def waves(self, waves: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        out = []
        for wave in waves:
            if self.speeds:
                wave = speed_perturb(wave, float(self.speeds[int(rng.integers(len(self.speeds)))]))
            if self.snr is not None:
                wave = add_noise(wave, float(rng.uniform(self.snr, self.snr + 20.0)), rng)
            out.append(wave)
        return out


class SpeechBatches(BucketBatches):
    """Utterances in batches of similar length, as features, for ``Trainer.fit``.

    Args:
        waves: (T_i,) float32 waves at the features' sample rate.
        labels: a (N,) tensor of class ids, or N lists of unit ids (CTC targets, each non-empty).
        features: how waves become frames; stats: the training set's ``GlobalStats`` (needed by
            ``normalisation="global"``).
        batch_size, shuffle, seed: as ``BucketBatches`` (the same epoch gives the same batches).
        augment: training augmentations, or None (validation).

    Without wave augmentations an utterance's features are computed once and kept.
    """

    def __init__(self, waves: Sequence[np.ndarray], labels, features: FeatureConfig,
                 stats: Optional[GlobalStats] = None, batch_size: int = 32, *, shuffle: bool = True, seed: int = 0,
                 augment: Optional[Augment] = None):
        super().__init__(list(waves), labels, batch_size, shuffle=shuffle, seed=seed)
        self.features, self.stats, self.augment = features, stats, augment
        self.cache: dict = {}

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        for b in self.batch_order(epoch):
            index = self.buckets[b]
            inputs, frames = self._features(b, index, epoch)
            if self.augment is not None and self.augment.masks:
                generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, epoch, b, 1])
                                                              .integers(2 ** 62)))
                inputs = spec_augment(inputs, frames, generator)
            if isinstance(self.labels, list):
                labels = pad([self.labels[i] for i in index])
            else:
                labels = self.labels[index]
            yield Batch(inputs, frames, labels)

    def _features(self, b: int, index: List[int], epoch: int):
        if b in self.cache:
            return self.cache[b]
        waves = [self.sequences[i] for i in index]
        vary, warps = self.augment is not None and self.augment.varies, None
        if vary:
            rng = np.random.default_rng([self.seed, epoch, b])
            waves = self.augment.waves(waves, rng)
            warps = self.augment.warps(len(waves), rng)
        feats = log_mel(*pad_waves(waves), self.features, self.stats, warps)
        if not vary:
            self.cache[b] = feats
        return feats


def global_stats(waves: Sequence[np.ndarray], features: FeatureConfig, batch_size: int = 64) -> GlobalStats:
    """Mean and standard deviation of each feature over the frames of ``waves`` (unnormalised)."""
    from dataclasses import replace

    plain, stats = replace(features, normalisation="none"), GlobalStats()
    for start in range(0, len(waves), batch_size):
        stats.update(*log_mel(*pad_waves(list(waves[start:start + batch_size])), plain))
    return stats
