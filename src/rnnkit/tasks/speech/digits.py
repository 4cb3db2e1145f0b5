"""Connected-word utterances made from isolated-word recordings (connected digits from FSDD, or any
word-labelled folder).

An utterance is 2-7 recordings drawn at random, joined by pauses of random length (and a pause
before and after), with white noise over the whole at a random signal-to-noise ratio. Everything
comes from one seed: utterance i depends only on ``(seed, i)``, so asking for more utterances
keeps the first ones. Only the recordings given are used: pass one split's recordings to make
that split's utterances (test utterances from test recordings only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .features import add_noise


@dataclass
class WordSpan:
    """One word of an utterance: its text, its samples ``[start, end)``, and which recording it is
    (the index into the recordings given)."""

    word: str
    start: int
    end: int
    source: int


@dataclass
class ConnectedUtterance:
    """A wave (T,) float32, its transcript (words joined by single spaces) and its words."""

    wave: np.ndarray
    text: str
    words: List[WordSpan]


def connected_utterances(recordings: Sequence[Tuple[np.ndarray, str]], count: int, seed: int, *,
                         sample_rate: int = 16000, min_words: int = 2, max_words: int = 7,
                         pause: Tuple[float, float] = (0.05, 0.3),
                         snr_db: Optional[Tuple[float, float]] = (10.0, 30.0)) -> List[ConnectedUtterance]:
    """``count`` connected-word utterances from ``recordings``.

    Args:
        recordings: (wave (T,) at ``sample_rate``, word) pairs of one split.
        count: utterances to make; seed: their seed.
        min_words, max_words: words per utterance, drawn uniformly (inclusive).
        pause: shortest and longest pause, in seconds, before, between and after words (uniform).
        snr_db: lowest and highest SNR of the added white noise, in dB, relative to the power of
            the words' samples (uniform); None: no noise (the words' samples are the recordings').
    Outputs: ``count`` ``ConnectedUtterance`` s.
    """
    if not len(recordings):
        raise ValueError("no recordings to make connected utterances from: give a word-labelled split")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"words per utterance must satisfy 1 <= min_words <= max_words, got {min_words}..{max_words}")
    if not 0 <= pause[0] <= pause[1]:
        raise ValueError(f"pauses must satisfy 0 <= shortest <= longest, got {pause}")
    if snr_db is not None and snr_db[0] > snr_db[1]:
        raise ValueError(f"the SNR range must be (lowest, highest), got {snr_db}")
    waves, words = [], []
    for i, (wave, word) in enumerate(recordings):
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or not wave.size:
            raise ValueError(f"recording {i} ({word!r}) must be a non-empty (T,) wave, got shape {wave.shape}")
        if not isinstance(word, str) or not word.strip() or " " in word.strip():
            raise ValueError(f"recording {i}: the word must be one non-empty word without spaces, got {word!r}")
        waves.append(wave)
        words.append(word.strip())
    return [_utterance(waves, words, np.random.default_rng([seed, i]), sample_rate, min_words, max_words, pause,
                       snr_db) for i in range(count)]


def _utterance(waves, words, rng, sample_rate, min_words, max_words, pause, snr_db) -> ConnectedUtterance:
    n = int(rng.integers(min_words, max_words + 1))
    picks = rng.integers(len(waves), size=n)
    gaps = np.round(rng.uniform(pause[0], pause[1], size=n + 1) * sample_rate).astype(int)   # (n + 1,)
    pieces, spans, at = [], [], 0
    for k, source in enumerate(picks):
        pieces += [np.zeros(gaps[k], np.float32), waves[source]]
        at += gaps[k]
        spans.append(WordSpan(words[source], at, at + len(waves[source]), int(source)))
        at += len(waves[source])
    pieces.append(np.zeros(gaps[-1], np.float32))
    wave = np.concatenate(pieces)
    if snr_db is not None:
        speech = np.concatenate([waves[s] for s in picks]).astype(np.float64)
        power = float(np.mean(speech ** 2))
        if power > 0:
            wave = add_noise(wave, float(rng.uniform(*snr_db)), rng, signal_power=power)
    return ConnectedUtterance(wave.astype(np.float32), " ".join(s.word for s in spans), spans)
