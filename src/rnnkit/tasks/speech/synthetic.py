"""Synthetic spoken "words" for tests and demos: each word is a fixed pattern of tones, chirps and
noise bursts, and each "speaker" says it at their own pitch and speed, with a random level,
timing jitter and background noise. Written as FSDD-style files ``{word}_{speaker}_{index}.wav``,
so every reader and the connected-word generator work on them as on real recordings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: word -> its segments: ("tone", Hz) a steady tone, ("chirp", from Hz, to Hz) a sweep, ("noise",
#: low Hz, high Hz) a band of noise; each segment about 100 ms at normal speed.
PATTERNS: Dict[str, List[tuple]] = {
    "0": [("tone", 300), ("tone", 900)],
    "1": [("chirp", 400, 1600)],
    "2": [("chirp", 1600, 400)],
    "3": [("noise", 2000, 3500), ("tone", 600)],
    "4": [("tone", 1200), ("chirp", 1200, 500), ("tone", 500)],
    "5": [("tone", 700), ("noise", 1500, 2500), ("tone", 700)],
}
SEGMENT_SECONDS = 0.1


def speak(word: str, rng: np.random.Generator, sample_rate: int = 8000, pitch: float = 1.0,
          speed: float = 1.0) -> np.ndarray:
    """One utterance of ``word`` (a key of ``PATTERNS``): (T,) float32 with short silences around it."""
    pieces = [np.zeros(int(rng.uniform(0.02, 0.06) * sample_rate), np.float32)]
    for segment in PATTERNS[word]:
        n = max(8, int(SEGMENT_SECONDS / speed * rng.uniform(0.85, 1.15) * sample_rate))
        t = np.arange(n) / sample_rate
        kind = segment[0]
        if kind == "tone":
            wave = np.sin(2 * np.pi * segment[1] * pitch * t + rng.uniform(0, 2 * np.pi))
        elif kind == "chirp":
            f0, f1 = segment[1] * pitch, segment[2] * pitch
            wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))
        else:
            spectrum = np.fft.rfft(rng.standard_normal(n))
            freqs = np.fft.rfftfreq(n, 1 / sample_rate)
            spectrum[(freqs < segment[1] * pitch) | (freqs > segment[2] * pitch)] = 0
            wave = np.fft.irfft(spectrum, n)
            wave /= max(1e-9, np.abs(wave).max())
        pieces.append((np.hanning(n) ** 0.3 * wave * 0.5).astype(np.float32))
    pieces.append(np.zeros(int(rng.uniform(0.02, 0.06) * sample_rate), np.float32))
    wave = np.concatenate(pieces) * rng.uniform(0.3, 1.0)
    return (wave + rng.normal(0, 0.003, len(wave))).astype(np.float32)


def write_words(folder, words: Sequence[str] = tuple(PATTERNS), speakers: Sequence[str] = ("ann", "bob", "cyd"),
                per_speaker: int = 10, sample_rate: int = 8000, seed: int = 0) -> List[Tuple[Path, str]]:
    """Write ``per_speaker`` recordings of each word by each speaker into ``folder`` as
    ``{word}_{speaker}_{index}.wav`` (16-bit PCM); returns (path, word) pairs. Deterministic in ``seed``; a speaker's pitch and speed
    depend on their name only, so another seed gives new recordings of the same voices."""
    from .audio import write_wav

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s, speaker in enumerate(speakers):
        voice = np.random.default_rng(sum(map(ord, speaker)))             # a speaker's voice, whatever the seed
        pitch, speed = voice.uniform(0.8, 1.25), voice.uniform(0.85, 1.15)
        for word in words:
            for index in range(per_speaker):
                rng = np.random.default_rng([seed, s, sum(map(ord, word)), index])
                path = folder / f"{word}_{speaker}_{index}.wav"
                write_wav(path, speak(word, rng, sample_rate, pitch, speed), sample_rate)
                out.append((path, word))
    return out
