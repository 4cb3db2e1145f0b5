"""Log-mel filterbank and MFCC features, their normalisation, and the training augmentations.

Shapes: B waves of T samples (zero-padded), T' frames, K = n_fft // 2 + 1 frequency bins,
M mel filters, F features per frame (M, or n_mfcc for MFCC).

The definition, written out so a reader (and the test's numpy reference) can redo it:

1. Frames: frame i holds samples ``[i * hop, i * hop + win)`` (no centring, no padding at the
   start); a wave of n samples has ``max(1, 1 + (n - win) // hop)`` frames (a wave shorter than one
   window is zero-padded to one frame).
2. Each frame is multiplied by a periodic Hann window of ``win`` samples, zero-padded at its end to
   ``n_fft`` samples, and its power spectrum ``|FFT|^2`` taken at the K bins ``k * sr / n_fft``.
3. Mel filters (``mel_filterbank``): the textbook mel scale ``mel(f) = 2595 log10(1 + f / 700)``;
   M + 2 points equally spaced in mel from ``mel(fmin)`` to ``mel(fmax)``, back in Hz, are
   ``f_0 < ... < f_{M+1}``; filter m (1..M) is the triangle rising linearly in Hz from 0 at
   ``f_{m-1}`` to 1 at ``f_m`` and falling to 0 at ``f_{m+1}`` (peak 1, no area normalisation).
4. Log-mel: ``log(max(power @ filters, floor))``. MFCC: the log-mels times an orthonormal DCT-II
   matrix, first ``n_mfcc`` coefficients.
5. Normalisation: per utterance (mean and standard deviation of each feature over that
   utterance's real frames), global (statistics of the training set, ``GlobalStats``), or none.
   Padded frames are zero.

Because frame i only sees samples below ``i * hop + win`` and a wave's padding is zeroed first, a
wave's features are the same alone and inside any padded batch.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .config import FeatureConfig



class Features(NamedTuple):
    """Feature frames (B, T', F), zero past each utterance's ``lengths`` (B,) frames."""

    features: Tensor
    lengths: Tensor


# --- the definition ------------------------------------------------------------------------------------

def hz_to_mel(hz):
    """The mel scale: ``2595 log10(1 + f / 700)`` (numpy arrays or floats)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """The inverse of ``hz_to_mel``: ``700 (10^(m / 2595) - 1)``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def warp_frequencies(hz, alpha: float, top: float, knee: float = 0.6):
    """Vocal tract length perturbation's piecewise-linear warp (Jaitly and Hinton 2013): ``f -> alpha f``
    up to the boundary ``b = knee top min(alpha, 1) / alpha``, then the straight line from ``alpha b``
    to ``top`` at ``top``, so the warped axis still ends at ``top``. (N,) Hz -> (N,) Hz."""
    if alpha <= 0:
        raise ValueError(f"a frequency warp factor must be positive, got {alpha}")
    hz = np.asarray(hz, dtype=np.float64)
    b = knee * top * min(alpha, 1.0) / alpha
    return np.where(hz <= b, alpha * hz, top - (top - alpha * b) / (top - b) * (top - hz))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: Optional[float] = None,
                   dtype: torch.dtype = torch.float64, warp: float = 1.0) -> Tensor:
    """Triangular mel filters (step 3 of the module docstring).

    Args:
        warp: VTLP's factor (training augmentation): every filter edge f moves to
            ``warp_frequencies(f, warp, fmax)``, about ``warp * f``; 1 is the definition.
    Outputs: (K, M) weights, K = n_fft // 2 + 1 bins at ``k * sample_rate / n_fft`` Hz.
    Raises:
        ValueError: a filter covers no FFT bin (too many filters for this resolution; checked
            unwarped only).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))     # (M + 2,) Hz
    if warp != 1.0:
        edges = warp_frequencies(edges, warp, fmax)
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft                           # (K,) Hz
    low, centre, high = edges[:-2], edges[1:-1], edges[2:]                           # (M,) each
    rising = (bins[:, None] - low) / (centre - low)                                  # (K, M)
    falling = (high - bins[:, None]) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(weights.max(axis=0) == 0)
    if empty.size and warp == 1.0:
        raise ValueError(f"{n_mels} mel filters are too many for an FFT of {n_fft} at {sample_rate} Hz: filter "
                         f"{empty[0] + 1} (near {centre[empty[0]]:.0f} Hz) covers no bin; use fewer --n-mels, a "
                         f"larger --n-fft or a higher --fmin")
    return torch.from_numpy(weights).to(dtype)


def dct_matrix(n_mels: int, n_mfcc: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """(M, n_mfcc) orthonormal DCT-II: ``C[m, k] = s_k cos(pi k (m + 1/2) / M)``, ``s_0 = sqrt(1/M)``,
    ``s_k = sqrt(2/M)``; ``log_mels @ C`` are the MFCCs."""
    m = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)                       # (M, 1)
    k = torch.arange(n_mfcc, dtype=torch.float64).unsqueeze(0)                       # (1, n_mfcc)
    matrix = torch.cos(math.pi * k * (m + 0.5) / n_mels) * math.sqrt(2.0 / n_mels)
    matrix[:, 0] = math.sqrt(1.0 / n_mels)
    return matrix.to(dtype)


def frame_count(lengths: Tensor, config: FeatureConfig) -> Tensor:
    """(B,) frames of waves of ``lengths`` (B,) samples: ``max(1, 1 + (n - win) // hop)``."""
    win, hop = config.window_length(), config.hop_length()
    return torch.clamp(torch.div(lengths - win, hop, rounding_mode="floor") + 1, min=1)


def pad_waves(waves: Sequence[np.ndarray]) -> Tuple[Tensor, Tensor]:
    """A list of (T_b,) waves as a zero-padded (B, T) float32 batch and its (B,) lengths."""
    if not len(waves):
        raise ValueError("no waves to pad: give at least one")
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for row, wave in enumerate(waves):
        batch[row, :len(wave)] = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    return batch, lengths


def log_mel(waves: Tensor, lengths: Optional[Tensor], config: FeatureConfig,
            stats: Optional["GlobalStats"] = None, warps: Optional[Sequence[float]] = None) -> Features:
    """Features of a batch of waves (log-mel, or MFCC with ``kind="mfcc"``), normalised as configured.

    Args:
        waves: (B, T) samples at ``config.sample_rate``, zero-padded (float64 stays float64).
        lengths: (B,) real samples (None: all T).
        stats: the training set's ``GlobalStats``, needed by ``normalisation="global"``.
        warps: (B,) VTLP factors, one per wave (training augmentation; ``mel_filterbank``'s ``warp``),
            or None: the definition.
    Outputs: ``Features``: (B, T', F) frames, zero past each of the (B,) frame lengths.
    """
    if waves.dim() != 2:
        raise ValueError(f"log_mel takes a (batch, samples) tensor of waves, got shape {tuple(waves.shape)}: "
                         f"pad a list of waves with pad_waves")
    if not waves.is_floating_point() or waves.dtype not in (torch.float32, torch.float64):
        waves = waves.float()
    B, T = waves.shape
    device, dtype = waves.device, waves.dtype
    lengths = torch.full((B,), T, dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long().cpu()
    if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"wave lengths must be between 1 and the padded length {T}, got "
                         f"{lengths.min().item()}..{lengths.max().item()}")
    win, hop, n_fft = config.window_length(), config.hop_length(), config.fft_size()
    frames = frame_count(lengths, config)                                               # (B,)
    n_frames = int(frames.max()) if B else 0
    real = torch.arange(T, device=device) < lengths.to(device).unsqueeze(1)             # (B, T)
    x = waves * real                                                                    # padding is zero
    need = (n_frames - 1) * hop + n_fft
    x = torch.nn.functional.pad(x, (0, max(0, need - T)))[:, :max(need, T)]             # (B, >= need)
    window = torch.zeros(n_fft, dtype=dtype, device=device)
    window[:win] = torch.hann_window(win, periodic=True, dtype=dtype, device=device)    # zero-padded at its end
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=False,
                      return_complex=True)[:, :, :n_frames]                             # (B, K, T')
    power = (spec.real ** 2 + spec.imag ** 2).transpose(1, 2)                           # (B, T', K)
    if warps is None:
        filters = mel_filterbank(config.sample_rate, n_fft, config.n_mels, config.fmin, config.fmax, dtype)
    else:
        if len(warps) != B:
            raise ValueError(f"log_mel got {len(warps)} warp factors for {B} waves: give one per wave")
        filters = torch.stack([mel_filterbank(config.sample_rate, n_fft, config.n_mels, config.fmin, config.fmax,
                                              dtype, float(a)) for a in warps])          # (B, K, M)
    filters = filters.to(device)
    feats = torch.log(torch.clamp(power @ filters, min=config.log_floor))               # (B, T', M)
    if config.kind == "mfcc":
        feats = feats @ dct_matrix(config.n_mels, config.n_mfcc, dtype).to(device)      # (B, T', n_mfcc)
    frames = frames.to(device)
    if config.normalisation == "utterance":
        feats = normalise_utterances(feats, frames)
    elif config.normalisation == "global":
        if stats is None:
            raise ValueError("global normalisation needs the training set's statistics: compute them with "
                             "GlobalStats over the training features (normalisation 'none'), and pass stats=")
        feats = stats.normalise(feats, frames)
    return Features(feats * _mask(frames, n_frames).unsqueeze(-1), frames)


def _mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, steps) True on each row's first ``lengths`` steps."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


def normalise_utterances(features: Tensor, lengths: Tensor, eps: float = 1e-5) -> Tensor:
    """Each utterance's features minus their mean over its real frames, divided by their standard
    deviation (at least ``eps``). (B, T', F) -> (B, T', F), zero past ``lengths``."""
    keep = _mask(lengths, features.shape[1]).unsqueeze(-1).to(features.dtype)           # (B, T', 1)
    count = lengths.to(features.dtype).clamp(min=1).view(-1, 1, 1)
    mean = (features * keep).sum(1, keepdim=True) / count                               # (B, 1, F)
    var = (((features - mean) * keep) ** 2).sum(1, keepdim=True) / count
    return (features - mean) / var.sqrt().clamp(min=eps) * keep


class GlobalStats:
    """Mean and standard deviation of each feature over every real frame of a training set, gathered
    batch by batch (float64 sums), for ``normalisation="global"``; ``to_dict``/``from_dict`` save
    them in a checkpoint.

    Example::

        stats = GlobalStats()
        for waves, lengths in batches:
            stats.update(*log_mel(waves, lengths, replace(config, normalisation="none")))
        feats, frames = log_mel(waves, lengths, config, stats)
    """

    def __init__(self):
        self.count = 0
        self.total: Optional[Tensor] = None
        self.squares: Optional[Tensor] = None

    def update(self, features: Tensor, lengths: Tensor) -> "GlobalStats":
        """Add the real frames of (B, T', F) features with (B,) frame lengths."""
        keep = _mask(lengths.to(features.device), features.shape[1])                      # (B, T')
        rows = features[keep].double()                                                  # (N, F)
        total, squares = rows.sum(0).cpu(), (rows ** 2).sum(0).cpu()
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.count += rows.shape[0]
        return self

    @property
    def mean(self) -> Tensor:
        if not self.count:
            raise ValueError("no frames were added to the global statistics: update() them with training features")
        return self.total / self.count

    @property
    def std(self) -> Tensor:
        var = self.squares / max(self.count, 1) - self.mean ** 2
        return var.clamp(min=0).sqrt().clamp(min=1e-5)

    def normalise(self, features: Tensor, lengths: Tensor) -> Tensor:
        """(features - mean) / std, zero past ``lengths``. (B, T', F) -> (B, T', F)."""
        if features.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"the global statistics have {self.mean.shape[0]} features, these frames "
                             f"{features.shape[-1]}: compute them with the same feature settings")
        mean, std = (v.to(features.device, features.dtype) for v in (self.mean, self.std))
        keep = _mask(lengths.to(features.device), features.shape[1]).unsqueeze(-1)
        return (features - mean) / std * keep

    def to_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, saved: dict) -> "GlobalStats":
        stats = cls()
        mean, std = torch.tensor(saved["mean"], dtype=torch.float64), torch.tensor(saved["std"], dtype=torch.float64)
        stats.count = int(saved["count"])
        stats.total = mean * stats.count
        stats.squares = (std ** 2 + mean ** 2) * stats.count
        return stats


# --- augmentations (training only) -----------------------------------------------------------------

def spec_augment(features: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None, *,
                 time_masks: int = 2, time_width: int = 20, time_ratio: float = 0.1, freq_masks: int = 2,
                 freq_width: int = 8) -> Tensor:
    """SpecAugment's masks (Park et al. 2019, without time warping): per utterance, ``time_masks``
    runs of 0..``min(time_width, time_ratio x its frames)`` consecutive real frames (the ratio
    keeps a short utterance's words from being masked whole) and ``freq_masks`` bands of
    0..``freq_width`` features, each width and start drawn uniformly, set to zero (the mean of
    normalised features).

    Inputs: features (B, T', F), lengths (B,). Outputs: a masked copy (B, T', F).
    """
    if min(time_masks, time_width, freq_masks, freq_width, time_ratio) < 0:
        raise ValueError("SpecAugment's mask counts, widths and ratio must be at least 0")
    B, T, Fd = features.shape
    lengths = lengths.to(torch.long).cpu()
    keep = torch.ones(B, T, Fd, dtype=torch.bool)

    def draw(count: int, width, extent: Tensor, size: int, axis: int):
        for _ in range(count):
            w = torch.floor(torch.rand(B, generator=generator) * (width + 1)).long()
            w = torch.minimum(w, extent)                                                # (B,)
            start = torch.floor(torch.rand(B, generator=generator) * (extent - w + 1)).long()
            pos = torch.arange(size).unsqueeze(0)                                       # (1, size)
            hit = (pos >= start.unsqueeze(1)) & (pos < (start + w).unsqueeze(1))       # (B, size)
            keep.mul_(~(hit.unsqueeze(2) if axis == 1 else hit.unsqueeze(1)))

    draw(time_masks, torch.minimum(torch.tensor(time_width), (lengths * time_ratio).long()), lengths, T, 1)
    draw(freq_masks, freq_width, torch.full((B,), Fd, dtype=torch.long), Fd, 2)
    return features * keep.to(features.device)


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """The wave played ``factor`` times faster (pitch and tempo together, Ko et al. 2015's speed
    perturbation): resampled with soxr to about ``T / factor`` samples. (T,) -> (T',) float32."""
    from .audio import resample

    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"a speed factor must be between 0.5 and 2, got {factor} (0.9 and 1.1 are usual)")
    wave = np.asarray(wave, dtype=np.float32)
    return wave.copy() if factor == 1.0 else resample(wave, factor, 1.0)


def add_noise(wave: np.ndarray, snr_db: float, generator: np.random.Generator, noise: Optional[np.ndarray] = None,
              signal_power: Optional[float] = None) -> np.ndarray:
    """The wave plus noise at a signal-to-noise ratio of ``snr_db`` decibels.

    Args:
        wave: (T,) samples. generator: a ``numpy.random.Generator`` (the noise, or where in ``noise``
            to start).
        noise: (N,) a noise recording (a random segment of it, repeated if shorter); None: white
            Gaussian noise.
        signal_power: the power the SNR refers to (default: the wave's mean square).
    Outputs: (T,) float32.
    """
    wave = np.asarray(wave, dtype=np.float32)
    power = float(np.mean(wave.astype(np.float64) ** 2)) if signal_power is None else float(signal_power)
    if power <= 0:
        raise ValueError("cannot add noise at an SNR to a silent wave: its power is zero")
    if noise is None:
        segment = generator.standard_normal(len(wave))
    else:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.ndim != 1 or not noise.size or not np.any(noise):
            raise ValueError("the noise recording must be a non-silent (N,) wave")
        start = int(generator.integers(len(noise)))
        segment = np.resize(np.roll(noise, -start), len(wave))
    scale = math.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(segment ** 2)), 1e-20))
    return (wave + scale * segment).astype(np.float32)


def features_of(waves: List[np.ndarray], config: FeatureConfig, stats: Optional[GlobalStats] = None) -> Features:
    """``log_mel`` of a list of (T_b,) waves (padded here)."""
    batch, lengths = pad_waves(waves)
    return log_mel(batch, lengths, config, stats)
