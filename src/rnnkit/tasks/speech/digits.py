"""Connected-word utterances made from isolated-word recordings (connected digits from FSDD, or any
word-labelled folder).

An utterance is 2-7 recordings drawn at random, each brought to one speech level (give or take a
few dB drawn at random), joined by pauses of random length (and a pause before and after), with
white noise over the whole at a random signal-to-noise ratio. Levelling matters: recorded levels
differ widely between speakers (in FSDD by 20 dB), and without it a quiet speaker's word next to
a loud one's would lie far below the noise the SNR promises. Everything
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


SPEECH_LEVEL = 0.05          # the RMS of a levelled word's active frames (about -26 dB full scale)


def speech_level(wave: np.ndarray, sample_rate: int, floor_db: float = 30.0) -> float:
    """The RMS of a recording's active frames: its 10 ms frames within ``floor_db`` of the loudest
    (so leading and trailing silence do not lower it). Zero for a silent wave."""
    hop = max(1, sample_rate // 100)
    wave = np.asarray(wave, dtype=np.float64)
    frames = np.pad(wave, (0, -len(wave) % hop)).reshape(-1, hop)               # (frames, hop)
    energy = np.mean(frames ** 2, axis=1)
    if not energy.max() > 0:
        return 0.0
    return float(np.sqrt(np.mean(energy[energy >= energy.max() * 10 ** (-floor_db / 10)])))


def connected_utterances(recordings: Sequence[Tuple[np.ndarray, str]], count: int, seed: int, *,
                         sample_rate: int = 16000, min_words: int = 2, max_words: int = 7,
                         pause: Tuple[float, float] = (0.05, 0.3),
                         level_db: Optional[Tuple[float, float]] = (-3.0, 3.0),
                         snr_db: Optional[Tuple[float, float]] = (10.0, 30.0)) -> List[ConnectedUtterance]:
    """``count`` connected-word utterances from ``recordings``.

    Args:
        recordings: (wave (T,) at ``sample_rate``, word) pairs of one split.
        count: utterances to make; seed: their seed.
        min_words, max_words: words per utterance, drawn uniformly (inclusive).
        pause: shortest and longest pause, in seconds, before, between and after words (uniform).
        level_db: each word is scaled to ``SPEECH_LEVEL`` (``speech_level``) plus a gain drawn
            from this range, in dB (uniform); None: the words keep their recorded levels.
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
    if level_db is not None and level_db[0] > level_db[1]:
        raise ValueError(f"the level range must be (lowest, highest) in dB, got {level_db}")
    if snr_db is not None and snr_db[0] > snr_db[1]:
        raise ValueError(f"the SNR range must be (lowest, highest), got {snr_db}")
    waves, words, levels = [], [], []
    for i, (wave, word) in enumerate(recordings):
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or not wave.size:
            raise ValueError(f"recording {i} ({word!r}) must be a non-empty (T,) wave, got shape {wave.shape}")
        if not isinstance(word, str) or not word.strip() or " " in word.strip():
            raise ValueError(f"recording {i}: the word must be one non-empty word without spaces, got {word!r}")
        if level_db is not None:
            levels.append(speech_level(wave, sample_rate))
            if not levels[-1] > 0:
                raise ValueError(f"recording {i} ({word!r}) is silent: it has no level to bring to the others'")
        waves.append(wave)
        words.append(word.strip())
    return [_utterance(waves, words, levels, np.random.default_rng([seed, i]), sample_rate, min_words, max_words,
                       pause, level_db, snr_db) for i in range(count)]


def _utterance(waves, words, levels, rng, sample_rate, min_words, max_words, pause, level_db,
               snr_db) -> ConnectedUtterance:
    n = int(rng.integers(min_words, max_words + 1))
    picks = rng.integers(len(waves), size=n)
    gaps = np.round(rng.uniform(pause[0], pause[1], size=n + 1) * sample_rate).astype(int)   # (n + 1,)
    said = [waves[s] for s in picks]
    if level_db is not None:
        gains = 10 ** (rng.uniform(level_db[0], level_db[1], size=n) / 20)                    # (n,)
        said = [(w * (g * SPEECH_LEVEL / levels[s])).astype(np.float32) for w, g, s in zip(said, gains, picks)]
    pieces, spans, at = [], [], 0
    for k, (source, word_wave) in enumerate(zip(picks, said)):
        pieces += [np.zeros(gaps[k], np.float32), word_wave]
        at += gaps[k]
        spans.append(WordSpan(words[source], at, at + len(word_wave), int(source)))
        at += len(word_wave)
    pieces.append(np.zeros(gaps[-1], np.float32))
    wave = np.concatenate(pieces)
    if snr_db is not None:
        speech = np.concatenate(said).astype(np.float64)
        power = float(np.mean(speech ** 2))
        if power > 0:
            wave = add_noise(wave, float(rng.uniform(*snr_db)), rng, signal_power=power)
    return ConnectedUtterance(wave.astype(np.float32), " ".join(s.word for s in spans), spans)
