"""Speech recognition as the engine trains it (``SpeechTask``), a trained recogniser ready to
classify or transcribe (``TrainedRecogniser``), and the streaming recogniser (``Stream``).

Batches are ``speech.batches`` ' ``Batch`` es: (B, T, F) features, (B,) frames, and (B,) class ids
(words) or ``(targets (B, U), target_lengths (B,))`` (CTC).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from rnnkit.train import Task

from ..classify.metrics import classification_metrics, single_label_statistics
from .batches import Units
from .ctc import CharNgram, WordTiming, alignment_timings, greedy_decode, prefix_beam_search, word_timings
from .features import FeatureConfig, GlobalStats, features_of, log_mel
from .model import AcousticModel, ctc_loss, words_loss


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus word and character error rates (jiwer): the edits over all utterances divided by the
    reference words (characters), with the edit counts. An empty reference with an empty
    hypothesis counts no error."""
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses)]
    kept = [(r, h) for r, h in pairs if r.strip()]
    inserted = sum(len(h.split()) for r, h in pairs if not r.strip())
    inserted_chars = sum(len(h) for r, h in pairs if not r.strip())
    if not kept:
        return {"wer": float(inserted > 0), "cer": float(inserted_chars > 0), "words": 0, "utterances": len(pairs)}
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    words, chars = jiwer.process_words(refs, hyps), jiwer.process_characters(refs, hyps)
    n_words = sum(len(r.split()) for r in refs)
    n_chars = chars.hits + chars.substitutions + chars.deletions
    word_edits = words.substitutions + words.deletions + words.insertions + inserted
    char_edits = chars.substitutions + chars.deletions + chars.insertions + inserted_chars
    return {"wer": word_edits / n_words, "cer": char_edits / max(1, n_chars), "words": n_words,
            "substitutions": words.substitutions, "deletions": words.deletions,
            "insertions": words.insertions + inserted, "utterances": len(pairs)}


class SpeechTask(Task):
    """Acoustic model training over speech batches.

    Args:
        model: an ``AcousticModel``. info: what the checkpoint records besides the model (labels
            or units, feature settings and statistics, the n-gram).
        names: the class names (words head) or ``Units`` (CTC).

    Validation statistics: the summed loss and its weight, and the confusion matrix (words) or the
    greedy transcripts and references (CTC), joined over batches: accuracy, macro-F1, WER and CER
    are computed once over the whole validation set.
    """

    def __init__(self, model: AcousticModel, info: dict, names):
        self.model, self.info, self.names = model, info, names

    @property
    def _config(self):
        return (self.model.module if hasattr(self.model, "module") else self.model).config

    def training_step(self, batch) -> Tensor:
        out, steps = self.model(batch.inputs, batch.lengths)
        if self._config.head == "words":
            return words_loss(out, batch.labels)
        targets, target_lengths = batch.labels
        return ctc_loss(out, steps, targets, target_lengths, self._config.blank)

    def validation_step(self, batch) -> dict:
        out, steps = self.model(batch.inputs, batch.lengths)
        if self.model.config.head == "words":
            loss = words_loss(out, batch.labels, reduction="sum")
            stats = single_label_statistics(out.argmax(-1), batch.labels, self.model.config.num_classes)
            return {**stats, "loss_sum": loss.item(), "loss_weight": int(batch.labels.numel())}
        targets, target_lengths = batch.labels
        loss = torch.nn.functional.ctc_loss(out.transpose(0, 1), targets, steps, target_lengths,
                                            blank=self.model.config.blank, reduction="sum", zero_infinity=True)
        hypotheses = [self.names.decode(ids) for ids in greedy_decode(out, steps, self.model.config.blank)]
        references = [self.names.decode(row[:n].tolist()) for row, n in zip(targets, target_lengths)]
        return {"loss_sum": loss.item(), "loss_weight": int(target_lengths.sum()), "hypotheses": hypotheses,
                "references": references}

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        if "confusion" in totals:
            return classification_metrics(totals)
        rates = error_rates(totals["hypotheses"], totals["references"])
        return {"loss": totals["loss_sum"] / max(1, totals["loss_weight"]), "wer": rates["wer"], "cer": rates["cer"],
                "words": rates["words"]}

    def config(self) -> dict:
        return {"task": "speech", "model": self.model.config_dict(), **self.info}


class Recognition(NamedTuple):
    """One recording's result: ``text`` (the word, or the transcript), ``score`` (the word's
    probability, or the transcript's log-probability), ``words`` (``WordTiming`` s, with timings)
    and ``seconds`` of audio."""

    text: str
    score: float
    words: list
    seconds: float


class TrainedRecogniser:
    """A speech model loaded from a checkpoint.

    Attributes: ``model`` (``AcousticModel``, eval mode), ``features`` (``FeatureConfig``),
    ``stats`` (``GlobalStats`` or None), ``labels`` (class names, words head) or ``units``
    (``Units``, CTC), ``lm`` (the ``CharNgram`` of the training transcripts, CTC), ``config``.
    """

    def __init__(self, model: AcousticModel, config: dict):
        task = config["task"]
        self.model, self.config = model.eval(), config
        self.features = FeatureConfig(**task["features"])
        self.stats = GlobalStats.from_dict(task["stats"]) if task.get("stats") else None
        self.head = model.config.head
        self.labels = task["labels"]["names"] if task.get("labels") else None
        self.units = Units.from_dict(task["units"]) if task.get("units") else None
        self.lm = CharNgram.from_dict(task["lm"]) if task.get("lm") else None
        self.lowercase = task.get("data", {}).get("lowercase", True)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frame_seconds(self) -> float:
        """Seconds per encoder step."""
        return self.features.frame_seconds() * self.model.config.factor()

    @torch.no_grad()
    def outputs(self, waves: Sequence[np.ndarray], batch_size: int = 32):
        """The model's outputs for (T_i,) waves, in batches of similar length: a list of (C,) word
        log-probabilities, or of (T'_i, V) CTC log-probabilities."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        results: list = [None] * len(waves)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            feats, frames = features_of([waves[i] for i in chunk], self.features, self.stats)
            out, steps = self.model(feats.to(self.device), frames.to(self.device))
            for row, i in enumerate(chunk):
                if self.head == "words":
                    results[i] = torch.log_softmax(out[row], -1).cpu()
                else:
                    results[i] = out[row, :int(steps[row])].cpu()
        return results

    def recognise(self, waves: Sequence[np.ndarray], *, beam: int = 1, lm_weight: float = 0.0,
                  insertion_bonus: float = 0.0, word_list: Optional[Sequence[str]] = None, timings: bool = False,
                  batch_size: int = 32) -> List[Recognition]:
        """The word (words head) or transcript (CTC) of each wave."""
        if self.head == "words" and (beam > 1 or lm_weight or word_list):
            raise ValueError("beam search, --lm-weight and --word-list are for CTC transcripts; this model "
                             "classifies words")
        sample_rate = self.features.sample_rate
        results = []
        for wave, out in zip(waves, self.outputs(waves, batch_size)):
            seconds = len(wave) / sample_rate
            if self.head == "words":
                best = int(out.argmax())
                results.append(Recognition(self.labels[best], float(out[best].exp()), [], seconds))
                continue
            results.append(self.decode(out, seconds, beam=beam, lm_weight=lm_weight, insertion_bonus=insertion_bonus,
                                       word_list=word_list, timings=timings))
        return results

    def decode(self, log_probs: Tensor, seconds: float, *, beam: int = 1, lm_weight: float = 0.0,
               insertion_bonus: float = 0.0, word_list=None, timings: bool = False) -> Recognition:
        """One utterance's transcript from its (T', V) CTC log-probabilities."""
        if beam == 1:
            ids = greedy_decode(log_probs, blank=Units.blank_id)
            score = float(log_probs.max(-1).values.sum())
        else:
            if (lm_weight or word_list) and self.units.kind != "chars":
                raise ValueError("the character n-gram and the word list are for character units; this model's units "
                                 "are whole words: leave --lm-weight at 0 and drop --word-list")
            if lm_weight and self.lm is None:
                raise ValueError("this checkpoint has no character n-gram: leave --lm-weight at 0")
            best = prefix_beam_search(log_probs, beam, Units.blank_id, lm=self.lm if lm_weight else None,
                                      lm_weight=lm_weight, insertion_bonus=insertion_bonus, word_list=word_list,
                                      units=self.units.texts())[0]
            ids, score = best.ids, best.acoustic
        words = []
        if timings and ids:
            tokens = alignment_timings(log_probs, ids, self.frame_seconds(), Units.blank_id)
            if self.units.kind == "chars":
                words = word_timings(tokens, self.units.tokens)
            else:
                words = [WordTiming(self.units.tokens[t.id], t.start, t.end) for t in tokens]
        return Recognition(self.units.decode(ids), score, words, seconds)

    def stream(self, chunk_ms: float = 100.0) -> "Stream":
        """A streaming recogniser over this (unidirectional CTC) model."""
        return Stream(self, chunk_ms)


@dataclass
class Stream:
    """Streaming recognition: ``feed`` audio as it comes, read the partial transcript, ``finish``.

    Feature frames are computed as soon as their window is complete, joined ``stack`` at a time
    into one encoder ``step()``, and decoded greedily as they come; the result equals the offline
    greedy transcript of the same model. Needs a unidirectional CTC model with ``stack`` or
    ``none`` subsampling and ``global`` (or no) feature normalisation (an utterance's own mean is
    not known until it ends).

    Example::

        stream = recogniser.stream()
        for chunk in chunks:             # (n,) float32 samples at the model's rate
            partial = stream.feed(chunk)
        text = stream.finish()
    """

    recogniser: TrainedRecogniser
    chunk_ms: float = 100.0
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    offset: int = 0                        # samples before ``samples`` already consumed
    frames_done: int = 0
    pending: list = field(default_factory=list)
    state: object = None
    path: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    total_samples: int = 0

    def __post_init__(self):
        r = self.recogniser
        if not r.model.config.streamable():
            raise ValueError("streaming needs a unidirectional CTC model with --subsample stack or none: train it "
                             "with --unidirectional")
        if r.features.normalisation == "utterance":
            raise ValueError("streaming cannot normalise by the utterance's own statistics (they are known only at "
                             "its end): train with --normalisation global")

    def chunk_samples(self) -> int:
        return max(1, int(round(self.recogniser.features.sample_rate * self.chunk_ms / 1000)))

    @torch.no_grad()
    def feed(self, chunk) -> str:
        """Add (n,) samples; returns the transcript so far."""
        started = time.perf_counter()
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.samples = np.concatenate([self.samples, chunk])
        self.total_samples += len(chunk)
        features = self.recogniser.features
        win, hop = features.window_length(), features.hop_length()
        ready = 0 if self.total_samples < win else 1 + (self.total_samples - win) // hop
        if ready > self.frames_done:
            self._frames(ready, win, hop)
        self._steps(final=False)
        self.latencies.append(time.perf_counter() - started)
        return self.text()

    @torch.no_grad()
    def finish(self) -> str:
        """The final transcript: the last frames (a wave shorter than one window is one zero-padded
        frame, as offline) and any incomplete stack, zero-padded."""
        features = self.recogniser.features
        if self.frames_done == 0 and self.total_samples:
            self.samples = np.concatenate([self.samples, np.zeros(features.window_length(), np.float32)])
            self._frames(1, features.window_length(), features.hop_length())
        self._steps(final=True)
        return self.text()

    def text(self) -> str:
        from .ctc import _collapse

        return self.recogniser.units.decode(_collapse(np.asarray(self.path, dtype=np.int64), Units.blank_id))

    def _frames(self, ready: int, win: int, hop: int) -> None:
        """Compute frames ``frames_done .. ready - 1`` from the buffered samples."""
        r = self.recogniser
        start = self.frames_done * hop - self.offset
        end = (ready - 1) * hop + win - self.offset
        segment = torch.from_numpy(self.samples[start:end]).unsqueeze(0)                    # (1, n)
        from dataclasses import replace

        plain = replace(r.features, normalisation="none")
        feats, _ = log_mel(segment, None, plain)                                           # (1, k, F)
        feats = feats[:, :ready - self.frames_done]
        if r.features.normalisation == "global":
            feats = r.stats.normalise(feats, torch.tensor([feats.shape[1]]))
        self.pending.extend(feats[0])
        self.frames_done = ready
        keep_from = self.frames_done * hop - self.offset                                  # the next frame's start
        self.samples = self.samples[keep_from:]
        self.offset += keep_from

    def _steps(self, final: bool) -> None:
        model = self.recogniser.model
        k = model.config.factor()
        while len(self.pending) >= k or (final and self.pending):
            block = self.pending[:k]
            self.pending = self.pending[k:]
            block = torch.stack(block)                                                     # (<=k, F)
            if len(block) < k:
                block = torch.cat([block, block.new_zeros(k - len(block), block.shape[1])])
            log_probs, self.state = model.step(block.unsqueeze(0).to(self.recogniser.device), self.state)
            self.path.append(int(log_probs[0].argmax()))
