"""Speech recognition: audio files -> log-mel features -> a recurrent acoustic model -> word labels
(isolated words, keyword spotting) or CTC transcripts (offline, or streaming through ``step()``).

Building blocks: ``audio`` (reading and resampling), ``features`` (log-mel/MFCC, normalisation,
augmentations), ``ctc`` (greedy and prefix beam search, a character n-gram, timings), ``digits``
(connected-digit utterances from word recordings), ``corpus`` (folders, manifests, LibriSpeech),
``batches`` (recordings as the engine's batches), ``model`` (the acoustic model), ``task`` (the
engine's task, the trained recogniser, the streaming one).

Python API (imported on first use): ``fit``, ``evaluate``, ``transcribe``, ``load``.
"""

from ..._lazy import exports
from ..spec import TaskSpec
from .config import SpeechData, SpeechDecoding, SpeechEvaluate, SpeechFit, SpeechModel, SpeechPredict

SPEC = TaskSpec(
    name="speech",
    summary="a speech recogniser: isolated words (classification) or transcripts (CTC) from audio files",
    description="Train a speech recogniser: log-mel features (torch.stft), optional frame stacking or "
                "convolutional subsampling, a stack of rnnkit LSTM/GRU layers, and a word head (one label per "
                "recording) or a CTC head (characters, for utterances of any length); SpecAugment, speed "
                "perturbation and noise as augmentations. --data is a folder whose file names carry the labels "
                "(FSDD's by default), one subfolder per word, a LibriSpeech tree, or a manifest (CSV/TSV/JSON "
                "lines of audio path and transcript).",
    data=SpeechData, model=SpeechModel, fit_options=SpeechFit, evaluate_options=SpeechEvaluate, predict_options=SpeechPredict,
    api="rnnkit.tasks.speech.api",
    data_help="a folder of recordings (labels in the file names, or one subfolder per word, or LibriSpeech) or a "
              "manifest (CSV, TSV or JSON lines)",
    valid_help="validation recordings in the same form (default: --valid-fraction of them held out)",
    inputs="audio files to recognise", epochs=30,
)

__getattr__, __dir__, _lazy = exports(__name__, {
    "fit": ".api", "evaluate": ".api", "transcribe": ".api", "load": ".api",
    "exportable": ".api", "predict_rows": ".api", "show": ".api",
    "stream_file": ".api", "AcousticModel": ".model", "init_encoder": ".model", "TrainedRecogniser": ".task", "Stream": ".task",
    "SpeechTask": ".task", "read_audio": ".audio", "read_corpus": ".corpus", "log_mel": ".features",
    "FeatureConfig": ".features", "greedy_decode": ".ctc", "prefix_beam_search": ".ctc", "CharNgram": ".ctc",
    "connected_utterances": ".digits",
})
__all__ = ["SPEC", "SpeechData", "SpeechDecoding", "SpeechFit", "SpeechEvaluate", "SpeechPredict", "SpeechModel"] + _lazy
