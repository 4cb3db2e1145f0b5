"""Audio files to mono float32 waves at the model's sample rate.

Decoding is libsndfile's (``soundfile``: WAV, FLAC, OGG/Vorbis), resampling soxr's (its "HQ"
quality). Every bad file is a one-line ValueError naming it and saying what to do: missing, empty,
not audio, truncated, of an unsupported format, or silent.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np

SUPPORTED = (".wav", ".flac", ".ogg", ".oga")
SILENCE = 1e-5          # a file whose every sample is below this (about -100 dBFS) is silent
CONVERT = "convert it to WAV or FLAC (for example: ffmpeg -i IN -ar 16000 -ac 1 OUT.wav)"


def read_audio(path, sample_rate: Optional[int] = 16000) -> np.ndarray:
    """One audio file as a mono wave.

    Args:
        path: a WAV, FLAC or OGG file.
        sample_rate: the rate to resample to (soxr) when the file's differs; None keeps the file's.
    Outputs: (T,) float32 samples in [-1, 1] (channels averaged).
    Raises:
        ValueError: the file is missing, empty, not audio or truncated, of an unsupported format,
            holds no samples, or is silent.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file: check the path")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): give an audio file with some content")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(f"{path}: unsupported audio format {suffix or '(no extension)'!r}: rnnkit reads "
                         f"{', '.join(SUPPORTED)}; {CONVERT}")
    if suffix == ".wav":
        _check_wav_length(path)
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)          # (T, C)
    except (sf.LibsndfileError, RuntimeError) as error:
        reason = str(error).split(": ", 1)[-1].strip() or "unreadable"
        raise ValueError(f"{path} is not audio soundfile can decode, or is truncated or corrupt ({reason}): "
                         f"{CONVERT}") from None
    return prepare(wave, rate, sample_rate, name=str(path))


def prepare(wave, rate: int, sample_rate: Optional[int] = 16000, name: str = "the wave") -> np.ndarray:
    """A wave already in memory made like ``read_audio``'s: mixed down, resampled, checked.

    Args:
        wave: (T,) mono or (T, C) samples, float in [-1, 1].
        rate: its sample rate; sample_rate: the rate wanted (None keeps ``rate``).
        name: what an error calls it.
    Outputs: (T',) float32.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)                                                   # (T,)
    elif wave.ndim != 1:
        raise ValueError(f"{name}: a wave is (samples,) or (samples, channels), got shape {wave.shape}")
    if wave.size == 0:
        raise ValueError(f"{name} holds no samples: give a recording with some sound")
    if not np.isfinite(wave).all():
        raise ValueError(f"{name} has NaN or infinite samples: re-export the recording")
    if float(np.abs(wave).max()) < SILENCE:
        raise ValueError(f"{name} is silent (every sample below {SILENCE:g}): check the recording")
    if sample_rate is not None and rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, rate: float, sample_rate: float) -> np.ndarray:
    """(T,) float32 at ``rate`` -> (about T * sample_rate / rate,) at ``sample_rate`` (soxr, HQ)."""
    import soxr

    if rate <= 0 or sample_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {rate} and {sample_rate}")
    return soxr.resample(np.asarray(wave, dtype=np.float32), rate, sample_rate, quality="HQ").astype(np.float32)


def write_wav(path, wave, sample_rate: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write ``wave`` ((T,) or (T, C) floats in [-1, 1]) as a WAV file (16-bit PCM by default; 'FLOAT'
    keeps float32). The format follows the suffix, so ``.flac``/``.ogg`` work too. Returns the path."""
    import soundfile as sf

    path = Path(path)
    kind = {".flac": "PCM_16", ".ogg": "VORBIS"}.get(path.suffix.lower(), subtype)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype=kind)
    return path


def _check_wav_length(path: Path) -> None:
    """A RIFF WAV whose data chunk declares more bytes than the file holds is truncated (libsndfile
    would silently read what is left)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return                                              # not RIFF/WAVE: libsndfile names the problem
        order = "<" if head[:4] == b"RIFF" else ">"
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk, length = struct.unpack(order + "4sI", handle.read(8))
            if chunk == b"data":
                if length not in (0, 0xFFFFFFFF) and offset + 8 + length > size:
                    have = size - offset - 8
                    raise ValueError(f"{path} is truncated: its header declares {length:,} bytes of audio but "
                                     f"the file holds {have:,}; copy or export it again")
                return
            offset += 8 + length + (length & 1)
