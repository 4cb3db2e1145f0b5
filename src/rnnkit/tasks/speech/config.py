"""The speech recogniser's settings: the features (``FeatureConfig``), the acoustic model
(``SpeechModel``), how recordings become batches (``SpeechData``: the corpus layout, the features,
the augmentations), the encoder's initialisation (``SpeechFit``), how it decodes
(``SpeechDecoding``), and the flags of ``rnnkit evaluate`` / ``predict`` for speech models. Every field is a flag (``rnnkit.options``); standard library only."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional

from ...options import check, option

UNKNOWN = ("map", "error")
UNIT_KINDS = ("chars", "words")
KINDS = ("fbank", "mfcc")
NORMALISATIONS = ("utterance", "global", "none")
HEADS = ("ctc", "words")
SUBSAMPLING = ("stack", "conv", "none")


@dataclass
class FeatureConfig:
    """How waves become feature frames (saved in every checkpoint, so prediction computes exactly
    the training features)."""

    sample_rate: int = option(16000, help="sample rate of the model (files are resampled to it)", min=1000)
    win_ms: float = option(25.0, help="analysis window, in milliseconds", above=0, metavar="MS")
    hop_ms: float = option(10.0, help="frame shift, in milliseconds", above=0, metavar="MS")
    n_fft: Optional[int] = option(None, help="FFT size (at least the window's samples)", min=1,
                                  default_text="the window's samples: 400 at 16 kHz")
    n_mels: int = option(40, help="mel filters (40 or 80 are usual)", min=1)
    fmin: float = option(20.0, help="lowest frequency of the mel filters, in Hz", min=0, metavar="HZ")
    fmax: Optional[float] = option(None, help="highest frequency of the mel filters, in Hz", above=0, metavar="HZ",
                                   default_text="half the sample rate")
    kind: str = option("fbank", help="log-mel filterbank energies, or MFCC (their DCT)", choices=KINDS)
    n_mfcc: int = option(13, help="mfcc: cepstral coefficients kept", min=1)
    normalisation: str = option("utterance", help="mean/variance normalisation of each feature: over each "
                                                  "utterance, with training-set statistics (global), or none",
                                choices=NORMALISATIONS)
    log_floor: float = option(1e-10, help="smallest filter energy before the log", above=0, cli=False)

    def __post_init__(self):
        check(self)
        nyquist = self.sample_rate / 2
        if self.fmax is not None and self.fmax > nyquist:
            raise ValueError(f"fmax {self.fmax:g} Hz is above half the sample rate ({nyquist:g} Hz): lower --fmax")
        if self.fmin >= self.top():
            raise ValueError(f"fmin {self.fmin:g} Hz must be below fmax {self.top():g} Hz")
        if self.window_length() < 2 or self.hop_length() < 1:
            raise ValueError(f"a {self.win_ms:g} ms window with a {self.hop_ms:g} ms hop is under two samples at "
                             f"{self.sample_rate} Hz: lengthen --win-ms / --hop-ms")
        if self.n_fft is not None and self.n_fft < self.window_length():
            raise ValueError(f"n_fft {self.n_fft} is shorter than the window ({self.window_length()} samples): "
                             f"raise --n-fft or shorten --win-ms")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc {self.n_mfcc} is more than the {self.n_mels} mel filters: lower --n-mfcc")

    def window_length(self) -> int:
        """Samples per analysis window."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    def hop_length(self) -> int:
        """Samples between frame starts."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def fft_size(self) -> int:
        return self.n_fft if self.n_fft is not None else self.window_length()

    def top(self) -> float:
        """The highest filter frequency, in Hz."""
        return self.fmax if self.fmax is not None else self.sample_rate / 2

    def size(self) -> int:
        """Features per frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def frame_seconds(self) -> float:
        """Seconds between frames."""
        return self.hop_length() / self.sample_rate


@dataclass
class SpeechModel:
    """The acoustic model's shape (saved in every checkpoint)."""

    head: str = option("ctc", help="ctc: transcripts of any length (characters); words: one label per recording "
                                   "(isolated words, keyword spotting)", choices=HEADS)
    subsample: str = option("stack", help="join k frames into one (stack, streamable), two strided convolutions "
                                          "(conv, k = 4) or none", choices=SUBSAMPLING)
    stack: int = option(2, help="stack: frames joined into one step", min=1)
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    hidden_size: int = option(256, help="hidden size of each direction", min=1)
    num_layers: int = option(3, flag="--layers", help="recurrent layers", min=1)
    bidirectional: bool = option(True, help="a unidirectional encoder (needed for --stream)", flag="--unidirectional",
                                 default_text="bidirectional")
    dropout: float = option(0.2, help="dropout between layers and before the head", min=0, below=1)
    conv_channels: int = option(32, help="conv: channels of each convolution", min=1)
    # fixed by the data
    input_size: int = option(40, help="features per frame", min=1, cli=False)
    num_classes: int = option(2, help="words: classes; ctc: units with the blank", min=2, cli=False)
    blank: int = option(0, help="ctc: the blank's id", min=0, cli=False)

    def __post_init__(self):
        check(self)

    def factor(self) -> int:
        """Feature frames per encoder step."""
        return {"stack": self.stack, "conv": 4, "none": 1}[self.subsample]

    def streamable(self) -> bool:
        """Whether ``step()`` can run it chunk by chunk: a unidirectional CTC model over stacked
        (or unsubsampled) frames."""
        return self.head == "ctc" and not self.bidirectional and self.subsample != "conv"


def _factors(values: List[float]) -> None:
    if any(not 0.5 <= f <= 2.0 for f in values):
        raise ValueError(f"speed factors must be between 0.5 and 2, such as 0.9,1.0,1.1; got {values}")


@dataclass
class SpeechData(FeatureConfig):
    """Where the recordings are and how they become batches of features.

    ``--data`` is a folder whose file names carry the labels (FSDD's ``{digit}_{speaker}_{index}.wav``,
    or ``--pattern``), a folder of one subfolder per word, a LibriSpeech tree, or a manifest (CSV,
    TSV or JSON lines of audio path and transcript). With ``--connected N`` the word-labelled
    recordings are joined into N connected-word utterances to transcribe (``digits``); the
    validation utterances are made from the validation recordings only.

    The feature fields (``FeatureConfig``) are saved in the checkpoint, so prediction computes
    exactly the training features.
    """

    pattern: Optional[str] = option(None, help="a regex with a (?P<label>...) group matching whole file names "
                                               "(and optionally speaker, index)", metavar="REGEX",
                                    default_text="FSDD's {digit}_{speaker}_{index}.wav")
    connected: int = option(0, help="join word recordings into N connected-word training utterances of 2-7 words "
                                    "(ctc head)", min=0, metavar="N", default_text="0: the recordings as they are")
    connected_valid: int = option(300, help="--connected: validation utterances made from the validation recordings",
                                  min=1, metavar="N")
    units: str = option("chars", help="ctc: output units: characters, or whole words (word-level CTC, for small "
                                      "vocabularies such as digits or commands)", choices=UNIT_KINDS)
    lowercase: bool = option(True, help="keep the case of transcripts", flag="--cased", default_text="lower-cased")
    unknown_chars: str = option("map", help="a validation or test transcript character the model has no unit for: "
                                            "map it to <unk> (counted) or stop with an error", choices=UNKNOWN)
    max_seconds: float = option(30.0, help="training recordings longer than this are left out (counted)", above=0,
                                metavar="S")
    valid_fraction: float = option(0.1, help="without --valid: the share of recordings held out for validation",
                                   above=0, below=1)
    batch_size: int = option(32, help="utterances per batch (batches hold utterances of similar length)", min=1)
    spec_augment: bool = option(True, help="no SpecAugment time and frequency masks in training",
                                flag="--no-spec-augment", default_text="on")
    speed_perturb: List[float] = option([], help="speed factors drawn per training utterance and epoch "
                                                 "(0.9,1.0,1.1 is usual)", valid=_factors, metavar="F,F,...",
                                        default_text="none")
    noise_snr: Optional[float] = option(None, help="add white noise to training utterances at SNR_DB to SNR_DB + 20 "
                                                   "dB", metavar="SNR_DB", default_text="none")
    vtlp: float = option(0.0, help="warp each training utterance's frequency axis by a factor drawn from [1 - X, "
                                   "1 + X] (vocal tract length perturbation; 0.1 is usual)", min=0, below=0.5,
                         metavar="X", default_text="0: none")

    def __post_init__(self):
        super().__post_init__()
        check(self)

    def features(self) -> FeatureConfig:
        """The feature settings alone."""
        return FeatureConfig(**{f.name: getattr(self, f.name) for f in fields(FeatureConfig)})


@dataclass
class SpeechFit:
    """``fit``'s other options: the encoder's initialisation."""

    init_from: Optional[str] = option(None, metavar="RUN", default_text="random initialisation",
                                      help="initialise the subsampling and recurrent layers from a speech run (a word "
                                           "classifier or a CTC model of the same features, subsampling, cell and "
                                           "width; the first layers where it has fewer); the head starts anew")

    def __post_init__(self):
        check(self)


@dataclass
class SpeechDecoding:
    """How CTC outputs become text: greedy (``--beam 1``) or prefix beam search, optionally with the
    character n-gram counted on the training transcripts and a list of allowed words."""

    beam: int = option(1, help="CTC prefix beam width (1: greedy)", min=1, flag="--ctc-beam")
    lm_weight: float = option(0.0, help="weight of the character n-gram counted on the training transcripts "
                                        "(beam search; 0: none)", min=0)
    insertion_bonus: float = option(0.0, help="beam search: added per emitted character")
    word_list: Optional[str] = option(None, help="beam search: only words of this file (one per line)",
                                      metavar="FILE", default_text="any word")

    def __post_init__(self):
        check(self)
        if self.beam == 1 and (self.lm_weight or self.word_list):
            raise ValueError("a language model or word list needs beam search: give --ctc-beam 8 (or more)")


@dataclass
class SpeechEvaluate(SpeechDecoding):
    """``rnnkit evaluate`` of a speech model: the test corpus, and what else to write."""

    pattern: Optional[str] = option(None, help="label regex of the test file names", metavar="REGEX",
                                    default_text="the training pattern")
    connected: int = option(0, help="score N connected-word utterances made from the test recordings", min=0,
                            metavar="N", default_text="0: the recordings as they are")
    connected_seed: int = option(2, help="--connected: the seed of the test utterances")
    confusion_png: Optional[str] = option(None, help="words: write the confusion matrix here", metavar="PNG",
                                          default_text="not written")
    worst: int = option(5, help="transcripts: list the N utterances of highest word error rate", min=0, metavar="N")

    def __post_init__(self):
        super().__post_init__()
        check(self)


@dataclass
class SpeechPredict(SpeechDecoding):
    """``rnnkit predict`` of a speech model: audio files as arguments (or lines of ``--input``)."""

    stream: bool = option(False, help="read each file in chunks through the unidirectional model's step(), "
                                      "printing partial transcripts")
    chunk_ms: float = option(100.0, help="--stream: milliseconds of audio per chunk", above=0, metavar="MS")
    timings: bool = option(False, help="transcripts: word start and end times from the CTC alignment")

    def __post_init__(self):
        super().__post_init__()
        check(self)
