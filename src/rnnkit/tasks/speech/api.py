"""Speech recognisers from recordings: ``fit``, ``evaluate``, ``transcribe``, ``load``. The command
line (``rnnkit train speech``, ``evaluate``, ``predict``) calls these; they are the Python API for the
same jobs.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from rnnkit.data import Labels
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint, run_directory
from rnnkit.train.checkpoint import load_task_model

from ..classify.metrics import classification_metrics, per_class, single_label_statistics
from ..spec import single_checkpoint
from .audio import read_audio
from .batches import Augment, SpeechBatches, Units, global_stats
from .config import SpeechData, SpeechDecoding, SpeechModel
from .corpus import Utterance, read_corpus
from .ctc import CharNgram
from .digits import connected_utterances
from .model import AcousticModel, init_encoder
from .task import SpeechTask, TrainedRecogniser, error_rates

LM_ORDER = 4                    # the character n-gram counted on the training transcripts
SPLIT_SEED = 1234


# --- reading -----------------------------------------------------------------------------------------

def read_waves(utterances: Sequence[Utterance], sample_rate: int) -> List[np.ndarray]:
    """Each utterance's audio, mono at ``sample_rate`` (``read_audio``: bad files are one-line errors)."""
    if len(utterances) > 500:
        print(f"reading {len(utterances):,} recordings", file=sys.stderr, flush=True)
    return [read_audio(u.path, sample_rate) for u in utterances]


def _texts(utterances: Sequence[Utterance], lowercase: bool) -> List[str]:
    return [" ".join(u.text.split()).lower() if lowercase else " ".join(u.text.split()) for u in utterances]


def _held_out(items: list, fraction: float) -> Tuple[list, list]:
    """(kept, held out): a seeded share of ``items`` held out (at least one; the same for every run)."""
    if len(items) < 2:
        raise ValueError(f"cannot hold out validation recordings from {len(items)}: give --valid")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(items))
    cut = max(1, int(round(len(items) * fraction)))
    return [items[i] for i in sorted(order[cut:])], [items[i] for i in sorted(order[:cut])]


def _too_long(waves: List[np.ndarray], texts: List[str], data: SpeechData) -> Tuple[list, list]:
    limit = int(data.max_seconds * data.sample_rate)
    kept = [i for i, w in enumerate(waves) if len(w) <= limit]
    if not kept:
        raise ValueError(f"every training recording is longer than --max-seconds {data.max_seconds:g}: raise it")
    if len(kept) < len(waves):
        warnings.warn(f"left out {len(waves) - len(kept):,} of {len(waves):,} training recordings longer than "
                      f"--max-seconds {data.max_seconds:g}", stacklevel=3)
    return [waves[i] for i in kept], [texts[i] for i in kept]


def _connect(waves: List[np.ndarray], texts: List[str], count: int, seed: int, sample_rate: int):
    """Connected-word utterances (waves, transcripts) from word recordings."""
    for text in texts:
        if " " in text or not text:
            raise ValueError(f"--connected joins single-word recordings, but one is labelled {text!r}: give a "
                             f"word-labelled folder")
    made = connected_utterances(list(zip(waves, texts)), count, seed, sample_rate=sample_rate)
    return [u.wave for u in made], [u.text for u in made]


def _ctc_targets(units: Units, texts: Sequence[str], what: str, policy: str) -> List[List[int]]:
    """Unit ids of each transcript; characters (or words) without a unit become ``<unk>`` (counted
    in a warning) or, with ``policy="error"``, stop with the first of them named."""
    out, unknown, first = [], 0, None
    for number, text in enumerate(texts, 1):
        ids, missing = units.encode(text)
        if not ids:
            raise ValueError(f"{what} transcript {number} is empty: every recording needs its transcript")
        if missing and first is None:
            first = missing[0]
        unknown += len(missing)
        out.append(ids)
    if unknown:
        what_units = "characters" if units.kind == "chars" else "words"
        if policy == "error":
            raise ValueError(f"the {what} transcripts have {unknown:,} {what_units} the model has no unit for (the "
                             f"first: {first!r}): train on transcripts that have them, or give --unknown-chars map")
        counted = f"1 {what_units[:-1]} of the {what} transcripts has no unit and was" if unknown == 1 else \
            f"{unknown:,} {what_units} of the {what} transcripts have no unit and were"
        warnings.warn(f"{counted} read as <unk> (the first: {first!r})", stacklevel=3)
    return out


# --- training --------------------------------------------------------------------------------------

def fit(path, out, *, valid=None, data: SpeechData = SpeechData(), model: Optional[dict] = None,
        init_from=None, train: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a word classifier or a CTC recogniser; checkpoints and log go to ``out``.

    Args:
        path: a folder (labels in file names, one subfolder per word, or LibriSpeech) or a manifest.
        valid: the same for validation; without it ``data.valid_fraction`` of the recordings is
            held out (seeded).
        data: how recordings become batches (``SpeechData``).
        model: ``SpeechModel`` fields other than the sizes the data fixes.
        init_from: a speech run or checkpoint whose subsampling and recurrent layers start this
            model (``model.init_encoder``; the same feature settings are required); not on resume.
        resume: continue the run in ``out`` (same labels, units and feature statistics).
    Outputs: the engine's ``TrainResult``; validation reports the loss and accuracy/macro-F1
    (words) or WER/CER of greedy transcripts (CTC).
    """
    out, model = Path(out), dict(model or {})
    shape = SpeechModel(**model)                                   # bad options fail before any audio is read
    if data.connected and shape.head != "ctc":
        raise ValueError("--connected makes utterances to transcribe: it needs --head ctc")
    features = data.features()
    source = _init_source(init_from, features) if init_from is not None and not resume else None
    with run_directory(out, resume=resume, task="speech"):
        recordings = read_corpus(path, data.pattern)
        if valid is None:
            recordings, valid_recordings = _held_out(recordings, data.valid_fraction)
        else:
            valid_recordings = read_corpus(valid, data.pattern)
        waves, texts = read_waves(recordings, data.sample_rate), _texts(recordings, data.lowercase)
        valid_waves = read_waves(valid_recordings, data.sample_rate)
        valid_texts = _texts(valid_recordings, data.lowercase)
        if data.connected:
            waves, texts = _connect(waves, texts, data.connected, train.seed, data.sample_rate)
            valid_waves, valid_texts = _connect(valid_waves, valid_texts, data.connected_valid, train.seed + 1,
                                                data.sample_rate)
        waves, texts = _too_long(waves, texts, data)
        if resume:
            info = {k: v for k, v in find_checkpoint(out).config["task"].items() if k not in ("task", "model")}
        else:
            stats = global_stats(waves, features) if data.normalisation == "global" else None
            info = {"features": asdict(features), "stats": stats.to_dict() if stats else None, "data": asdict(data),
                    "fit": {"init_from": None if init_from is None else str(init_from)}}
            if shape.head == "words":
                info["labels"] = Labels.build([(t,) for t in texts]).to_dict()
            else:
                info["units"] = Units.build(texts, data.units).to_dict()
                info["lm"] = CharNgram.train(texts, order=LM_ORDER).to_dict() if data.units == "chars" else None
        from .features import GlobalStats

        stats = GlobalStats.from_dict(info["stats"]) if info.get("stats") else None
        if shape.head == "words":
            labels = Labels.from_dict(info["labels"])
            names, y = labels, labels.encode([(t,) for t in texts], what="training")
            valid_y = labels.encode([(t,) for t in valid_texts], what="validation")
            classes = len(labels)
        else:
            units = Units.from_dict(info["units"])
            names, y = units, _ctc_targets(units, texts, "training", "error")
            valid_y = _ctc_targets(units, valid_texts, "validation", data.unknown_chars)
            classes = len(units)
        config = SpeechModel(**dict(model, input_size=features.size(), num_classes=classes, blank=Units.blank_id))
        torch.manual_seed(train.seed)
        acoustic = AcousticModel(config)
        if source is not None:
            init_encoder(acoustic, source)
        task = SpeechTask(acoustic, info, names)
        augment = Augment(data.speed_perturb, data.noise_snr, data.spec_augment, data.vtlp)
        train_batches = SpeechBatches(waves, y, features, stats, data.batch_size, seed=train.seed, augment=augment)
        valid_batches = SpeechBatches(valid_waves, valid_y, features, stats, data.batch_size, shuffle=False)
        return Trainer(task, train, out).fit(train_batches, valid_batches, resume=resume)


def _init_source(path, features) -> AcousticModel:
    """The acoustic model of ``--init-from``, refused (one line) if its features differ."""
    source, saved, checkpoint = load_task_model(path, "speech",
                                                lambda task: AcousticModel(SpeechModel(**task["model"])))
    differ = [f"{k} ({v!r}, this run {getattr(features, k)!r})" for k, v in saved["features"].items()
              if getattr(features, k, v) != v]
    if differ:
        raise ValueError(f"--init-from {checkpoint.path} computed other features: {', '.join(differ)}; give the "
                         f"same feature flags")
    return source


# --- using a trained model -------------------------------------------------------------------------

def load(path, *, device: str = "cpu") -> TrainedRecogniser:
    """Rebuild the recogniser saved in ``path`` (a run directory, ``RUN/BEST`` or a checkpoint)."""
    model, _, checkpoint = load_task_model(path, "speech", lambda task: AcousticModel(SpeechModel(**task["model"])),
                                           device)
    return TrainedRecogniser(model, checkpoint.config)


def _inputs(trained: TrainedRecogniser, inputs) -> Tuple[List[np.ndarray], List[str]]:
    """Waves and names of audio paths or of (T,) arrays at the model's sample rate."""
    if isinstance(inputs, (str, Path, np.ndarray)):
        inputs = [inputs]
    if not len(inputs):
        raise ValueError("nothing to recognise: give at least one audio file")
    waves, names = [], []
    for number, item in enumerate(inputs, 1):
        if isinstance(item, (str, Path)):
            waves.append(read_audio(item, trained.features.sample_rate))
            names.append(str(item))
        else:
            from .audio import prepare

            waves.append(prepare(item, trained.features.sample_rate, None, name=f"wave {number}"))
            names.append(f"wave {number}")
    return waves, names


def _word_list(path: Optional[str]) -> Optional[List[str]]:
    if path is None:
        return None
    from rnnkit.data.tables import read_text

    words = [w for line in read_text(Path(path), "utf-8").split("\n") for w in line.split()]
    if not words:
        raise ValueError(f"{path} holds no words: give one word per line")
    return words


def _decode_options(options: SpeechDecoding) -> dict:
    return dict(beam=options.beam, lm_weight=options.lm_weight, insertion_bonus=options.insertion_bonus,
                word_list=_word_list(options.word_list))


def transcribe(checkpoint, inputs, *, device: str = "cpu", **decoding) -> List[str]:
    """The word (words head) or transcript (CTC) of each audio path or (T,) wave at the model's rate.
    ``decoding``: ``SpeechDecoding`` fields. ``load(checkpoint).recognise`` gives scores and timings."""
    options = SpeechDecoding(**decoding)
    trained = load(single_checkpoint(checkpoint, "speech"), device=device)
    waves, _ = _inputs(trained, inputs)
    return [r.text for r in trained.recognise(waves, **_decode_options(options))]


def stream_file(trained: TrainedRecogniser, wave: np.ndarray, chunk_ms: float = 100.0):
    """Feed ``wave`` to a ``Stream`` chunk by chunk: ``(final text, [(seconds, partial text) whenever it
    changed], the Stream)``."""
    stream = trained.stream(chunk_ms)
    size, partials, last = stream.chunk_samples(), [], ""
    for start in range(0, len(wave), size):
        text = stream.feed(wave[start:start + size])
        if text != last:
            partials.append((round(min(len(wave), start + size) / trained.features.sample_rate, 3), text))
            last = text
    return stream.finish(), partials, stream


def predict_rows(checkpoints, inputs: Sequence[str], *, device: str = "cpu", stream: bool = False,
                 chunk_ms: float = 100.0, timings: bool = False, **decoding) -> List[dict]:
    """``rnnkit predict``'s rows: ``{"audio", "text", "score", "seconds"}``, with ``timings`` the list
    ``"words"`` of ``{"word", "start", "end"}``, with ``stream`` the ``"partials"`` (seconds of audio
    read, transcript so far) as they changed."""
    options = SpeechDecoding(**decoding)
    trained = load(single_checkpoint(checkpoints, "speech"), device=device)
    waves, names = _inputs(trained, list(inputs))
    rows = []
    if stream:
        if options.beam > 1:
            raise ValueError("streaming decodes greedily: leave --ctc-beam at 1")
        for name, wave in zip(names, waves):
            text, partials, _ = stream_file(trained, wave, chunk_ms)
            rows.append({"audio": name, "text": text, "seconds": round(len(wave) / trained.features.sample_rate, 3),
                         "partials": partials})
        return rows
    for name, result in zip(names, trained.recognise(waves, timings=timings, **_decode_options(options))):
        row = {"audio": name, "text": result.text, "score": round(result.score, 4), "seconds": round(result.seconds, 3)}
        if timings and trained.head == "ctc":
            row["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in result.words]
        rows.append(row)
    return rows


def show(row: dict) -> str:
    """How ``rnnkit predict`` prints a result: ``audio TAB text``, then the partial transcripts or the
    word timings, one per line."""
    lines = [f"{row['audio']}\t{row['text']}"]
    lines += [f"  {seconds:7.2f}s  {text}" for seconds, text in row.get("partials", [])]
    lines += [f"  {w['start']:7.2f}-{w['end']:.2f}s  {w['word']}" for w in row.get("words", [])]
    return "\n".join(lines)


def evaluate(checkpoints, path, *, encoding: Optional[str] = None, batch_size: Optional[int] = None,
             device: str = "cpu", pattern: Optional[str] = None, connected: int = 0, connected_seed: int = 2,
             confusion_png: Optional[str] = None, worst: int = 5, **decoding) -> dict:
    """Accuracy, macro-F1 and per-class scores (words), or WER and CER with the worst utterances (CTC),
    of a test corpus.

    Args:
        path: a corpus as ``fit`` reads it. pattern: the label regex of its file names (default:
            the training one).
        connected: score this many connected-word utterances made from the test recordings (with
            ``connected_seed``).
        confusion_png: words: write the confusion matrix there. worst: CTC: list this many
            utterances of highest WER.
        decoding: ``SpeechDecoding`` fields.
    """
    options = SpeechDecoding(**decoding)
    trained = load(single_checkpoint(checkpoints, "speech"), device=device)
    saved = trained.config["task"].get("data", {})
    recordings = read_corpus(path, pattern if pattern is not None else saved.get("pattern"))
    waves, texts = read_waves(recordings, trained.features.sample_rate), _texts(recordings, trained.lowercase)
    names = [str(u.path) for u in recordings]
    if connected:
        if trained.head != "ctc":
            raise ValueError("--connected makes utterances to transcribe: this model classifies words")
        waves, texts = _connect(waves, texts, connected, connected_seed, trained.features.sample_rate)
        names = [f"connected {i + 1}" for i in range(len(waves))]
    results = trained.recognise(waves, batch_size=batch_size or 32, **_decode_options(options))
    seconds = sum(len(w) for w in waves) / trained.features.sample_rate
    if trained.head == "words":
        labels = Labels(list(trained.labels))
        truth = labels.encode([(t,) for t in texts], what="test")
        predicted = torch.tensor([labels.index[r.text] for r in results])
        totals = single_label_statistics(predicted, truth, len(labels))
        result = dict(classification_metrics(totals), seconds=round(seconds, 2),
                      per_class=per_class(totals, labels.names),
                      errors=[{"audio": n, "label": t, "predicted": r.text} for n, t, r in zip(names, texts, results)
                              if r.text != t][:50])
        if confusion_png:
            from ..classify.plots import plot_confusion_matrix

            plot_confusion_matrix(totals["confusion"], labels.names, Path(confusion_png))
            result["confusion_png"] = str(confusion_png)
        return result
    hypotheses = [r.text for r in results]
    rates = error_rates(hypotheses, texts)
    scored = []
    for name, ref, hyp in zip(names, texts, hypotheses):
        one = error_rates([hyp], [ref])
        scored.append((one["wer"], name, ref, hyp))
    scored.sort(key=lambda s: -s[0])
    return {"wer": rates["wer"], "cer": rates["cer"], "words": rates["words"], "utterances": len(texts),
            "substitutions": rates.get("substitutions", 0), "deletions": rates.get("deletions", 0),
            "insertions": rates.get("insertions", 0), "seconds": round(seconds, 2), "beam": options.beam,
            "worst": [{"audio": n, "wer": round(w, 4), "reference": r, "hypothesis": h}
                      for w, n, r, h in scored[:worst] if w > 0]}


def exportable(trained: TrainedRecogniser):
    """``rnnkit export``: the acoustic model on feature frames, ``(features (B, T, F), lengths (B,))
    -> (outputs, steps)``: CTC log-probabilities (B, T', units) and the (B,) encoder steps, or the
    words head's logits (B, classes). The features are the checkpoint's own (``trained.features``,
    normalised as it says); computing them from audio stays outside the exported model."""
    from rnnkit.export import Exportable, padded_lengths

    model = trained.model
    width = model.config.input_size

    def make_inputs(batch: int, length: int, generator: torch.Generator):
        lengths, real = padded_lengths(batch, length, generator)                             # (B,), (B, T)
        return torch.randn(batch, length, width, generator=generator) * real.unsqueeze(-1), lengths

    return Exportable(model, make_inputs, ["features", "lengths"], ["outputs", "steps"],
                      {"features": {0: "batch", 1: "length"}, "lengths": {0: "batch"}},
                      min_length=model.config.factor() + 1)      # at least two encoder steps
