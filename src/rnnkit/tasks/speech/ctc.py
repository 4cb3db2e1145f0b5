"""CTC decoding: greedy, prefix beam search (with an optional character n-gram and word list), and
token timings from the best alignment.

Shapes: T frames (encoder steps), V units with the blank, B utterances, U emitted tokens.
Log-probabilities are per-frame ``log_softmax`` outputs. A labelling is read off a path of frame
labels by collapsing repeats, then dropping blanks (Graves et al. 2006): ``a a - a b b`` is ``a a b``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

NEG_INF = float("-inf")
BOS, EOS = "\x02", "\x03"           # the n-gram's start padding and end of text (never in a transcript)


def _as_numpy(log_probs) -> np.ndarray:
    if isinstance(log_probs, Tensor):
        log_probs = log_probs.detach().to("cpu", torch.float64).numpy()
    return np.asarray(log_probs, dtype=np.float64)


def greedy_decode(log_probs, lengths=None, blank: int = 0) -> Union[List[int], List[List[int]]]:
    """The labelling of the most probable path: each frame's best unit, repeats collapsed, blanks dropped.

    Inputs: log_probs (T, V), or (B, T, V) with lengths (B,) real frames (None: all T).
    Outputs: for (T, V) one list of unit ids; for (B, T, V) one list per utterance.
    """
    if isinstance(log_probs, Tensor):
        best = log_probs.detach().argmax(-1).cpu().numpy()
    else:
        best = np.asarray(log_probs).argmax(-1)
    if best.ndim == 1:
        return _collapse(best, blank)
    if best.ndim != 2:
        raise ValueError(f"greedy_decode takes (T, V) or (B, T, V) log-probabilities, got {best.ndim + 1} dimensions")
    steps = [best.shape[1]] * best.shape[0] if lengths is None else [int(n) for n in lengths]
    return [_collapse(row[:n], blank) for row, n in zip(best, steps)]


def _collapse(path: np.ndarray, blank: int) -> List[int]:
    """Unit ids of a frame path (T,): repeats collapsed, then blanks dropped."""
    if not len(path):
        return []
    keep = np.ones(len(path), dtype=bool)
    keep[1:] = path[1:] != path[:-1]
    return [int(u) for u in path[keep] if u != blank]


# --- a character n-gram ----------------------------------------------------------------------------------

class CharNgram:
    """A character n-gram language model with add-k smoothing:
    ``P(c | h) = (count(h, c) + k) / (count(h) + k |V|)``, h the previous ``order - 1`` characters
    (padded with a start symbol), V the characters seen in training plus the end of text and one
    slot for any unseen character. No back-off: a tiny model for decoding with small vocabularies.

    Example::

        lm = CharNgram.train(["one two", "two one"], order=3)
        lm.log_prob("tw", "o")        # natural log
    """

    def __init__(self, order: int = 3, k: float = 0.1):
        if order < 1:
            raise ValueError(f"an n-gram's order must be at least 1, got {order}")
        if k <= 0:
            raise ValueError(f"add-k smoothing needs k > 0, got {k}")
        self.order, self.k = order, float(k)
        self.counts: Dict[str, Counter] = defaultdict(Counter)      # context -> next character -> count
        self.vocab = {EOS}

    @classmethod
    def train(cls, texts: Iterable[str], order: int = 3, k: float = 0.1) -> "CharNgram":
        """A model counted over ``texts`` (each scored from its start to its end)."""
        lm = cls(order, k)
        seen = 0
        for text in texts:
            seen += 1
            padded = BOS * (order - 1) + text + EOS
            for i in range(order - 1, len(padded)):
                lm.counts[padded[i - order + 1:i]][padded[i]] += 1
            lm.vocab.update(text)
        if not seen:
            raise ValueError("no text to train the character n-gram on: give at least one transcript")
        return lm

    def context(self, text: str) -> str:
        """The last ``order - 1`` characters of ``text``, start-padded."""
        n = self.order - 1
        return (BOS * n + text)[len(text):] if n else ""

    def log_prob(self, context: str, char: str) -> float:
        """Natural log of P(char | the end of ``context``); ``char`` may be ``EOS``."""
        counts = self.counts.get(self.context(context))
        seen = counts[char] if counts else 0
        total = sum(counts.values()) if counts else 0
        return math.log((seen + self.k) / (total + self.k * (len(self.vocab) + 1)))

    def score(self, text: str, end: bool = True) -> float:
        """Natural log-probability of ``text`` (and of its end, with ``end``)."""
        chars = list(text) + ([EOS] if end else [])
        return sum(self.log_prob(text[:i], c) for i, c in enumerate(chars))

    def to_dict(self) -> dict:
        """JSON-able counts, for a checkpoint."""
        return {"order": self.order, "k": self.k, "vocab": sorted(self.vocab),
                "counts": {h: dict(c) for h, c in self.counts.items()}}

    @classmethod
    def from_dict(cls, saved: dict) -> "CharNgram":
        lm = cls(saved["order"], saved["k"])
        lm.vocab = set(saved["vocab"])
        for h, c in saved["counts"].items():
            lm.counts[h] = Counter(c)
        return lm


# --- prefix beam search ----------------------------------------------------------------------------------

class Hypothesis(NamedTuple):
    """One labelling: unit ids, its ranking score (acoustic + weighted LM + bonuses), and the
    acoustic log-probability alone (the sum over every path giving it)."""

    ids: List[int]
    score: float
    acoustic: float


@dataclass
class _Prefix:
    blank: float = NEG_INF          # log P(prefix, path ends in blank) over frames so far
    label: float = NEG_INF          # log P(prefix, path ends in its last unit)
    extra: float = 0.0              # weighted LM log-probability and insertion bonuses of the prefix
    text: str = ""

    def acoustic(self) -> float:
        return float(np.logaddexp(self.blank, self.label))


def _words(word_list) -> tuple:
    """(complete words, every prefix of a word)."""
    words = {w for w in word_list if w}
    if not words:
        raise ValueError("the word list is empty: give at least one word")
    return words, {w[:i] for w in words for i in range(len(w) + 1)}


def prefix_beam_search(log_probs, beam: int = 8, blank: int = 0, *, lm: Optional[CharNgram] = None,
                       lm_weight: float = 0.5, insertion_bonus: float = 0.0, word_list: Optional[Iterable[str]] = None,
                       units: Optional[Sequence[str]] = None, space: str = " ",
                       prune: Optional[float] = 10.0) -> List[Hypothesis]:
    """CTC prefix beam search in log space (Hannun et al. 2014's algorithm).

    Each prefix keeps the probability of the paths reaching it that end in a blank and of those
    ending in its last unit, so every path of a labelling counts (the most probable labelling,
    not the most probable path). At each frame a prefix extends by blank (same prefix), by its
    last unit (same prefix, from the paths ending in it; a new repeat only from those ending in
    blank), or by another unit; the ``beam`` best prefixes by score survive.

    Args:
        log_probs: (T, V) per-frame log-probabilities.
        beam: prefixes kept per frame.
        lm, lm_weight: a character n-gram scoring each emitted unit's characters (and, at the end,
            the end of text), weighted; insertion_bonus: added per emitted unit (offsets the LM's
            preference for short outputs).
        word_list: only words of this list (units between ``space`` units); a final hypothesis
            must end on a complete word.
        units: the text of each id (index ``blank`` ignored); needed by ``lm`` and ``word_list``.
        prune: units more than this many nats below a frame's best are not tried (None: try all).
    Outputs: at most ``beam`` hypotheses, best first. With ``word_list``, if no hypothesis ends on
    a complete word, the best incomplete ones are returned.
    """
    lp = _as_numpy(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"prefix_beam_search takes one utterance's (T, V) log-probabilities, got shape {lp.shape}")
    if beam < 1:
        raise ValueError(f"the beam must be at least 1, got {beam}")
    T, V = lp.shape
    if not 0 <= blank < V:
        raise ValueError(f"the blank id {blank} is not among the {V} units")
    if (lm is not None or word_list is not None) and (units is None or len(units) != V):
        raise ValueError(f"a language model or word list needs units: the text of each of the {V} ids")
    words, stems = _words(word_list) if word_list is not None else (None, None)

    def allowed(text: str) -> bool:
        if words is None:
            return True
        if text.startswith(space) or space + space in text:
            return False
        done, _, last = text.rpartition(space)
        return last in stems and all(w in words for w in done.split(space) if done)

    def grow(prefix: _Prefix, unit: int) -> tuple:
        """(text, extra) of the prefix extended by ``unit``."""
        if units is None:
            return "", prefix.extra + insertion_bonus
        piece, extra, text = units[unit], prefix.extra + insertion_bonus, prefix.text
        if lm is not None:
            for i, ch in enumerate(piece):
                extra += lm_weight * lm.log_prob(text + piece[:i], ch)
        return text + piece, extra

    beams: Dict[tuple, _Prefix] = {(): _Prefix(blank=0.0)}
    for t in range(T):
        frame = lp[t]
        tried = range(V) if prune is None else np.flatnonzero(frame >= frame.max() - prune)
        nxt: Dict[tuple, _Prefix] = {}

        def slot(key, like: _Prefix, text=None, extra=None):
            if key not in nxt:
                nxt[key] = _Prefix(extra=like.extra if extra is None else extra, text=like.text if text is None else text)
            return nxt[key]

        for key, p in beams.items():
            total = np.logaddexp(p.blank, p.label)
            last = key[-1] if key else None
            for u in tried:
                u, q = int(u), frame[u]
                if u == blank:
                    s = slot(key, p)
                    s.blank = np.logaddexp(s.blank, total + q)
                    continue
                if u == last:
                    s = slot(key, p)                                   # the repeat collapses
                    s.label = np.logaddexp(s.label, p.label + q)
                    source = p.blank + q                               # a new unit after a blank
                else:
                    source = total + q
                new = key + (u,)
                if new in nxt:
                    s = nxt[new]
                else:
                    text, extra = grow(p, u)
                    if not allowed(text):
                        continue
                    s = slot(new, p, text, extra)
                s.label = np.logaddexp(s.label, source)
        # a repeat tried from a prefix with no blank-ending paths gets no mass: an impossible labelling, dropped
        possible = [kv for kv in nxt.items() if kv[1].acoustic() > NEG_INF] or list(nxt.items())
        ranked = sorted(possible, key=lambda kv: kv[1].acoustic() + kv[1].extra, reverse=True)
        beams = dict(ranked[:beam])

    def final(p: _Prefix) -> float:
        end = lm_weight * lm.log_prob(p.text, EOS) if lm is not None else 0.0
        return p.acoustic() + p.extra + end

    done = list(beams.items())
    if words is not None:
        complete = [(k, p) for k, p in done if not p.text or p.text.rpartition(space)[2] in words]
        done = complete or done
    out = [Hypothesis(list(k), final(p), p.acoustic()) for k, p in done]
    return sorted(out, key=lambda h: h.score, reverse=True)


# --- timings -------------------------------------------------------------------------------------------

class TokenTiming(NamedTuple):
    """One emitted unit: its id, its first and last frames on the best path, and those in seconds
    (``start`` = first frame x frame_seconds, ``end`` = (last frame + 1) x frame_seconds)."""

    id: int
    first: int
    last: int
    start: float
    end: float


class WordTiming(NamedTuple):
    word: str
    start: float
    end: float


def alignment_timings(log_probs, ids: Sequence[int], frame_seconds: float, blank: int = 0) -> List[TokenTiming]:
    """Where each of ``ids`` lies in time: the most probable path (Viterbi) among those giving
    exactly ``ids``; for greedy ``ids`` that is the greedy path itself.

    Inputs: log_probs (T, V); ids (U,) the labelling; frame_seconds: seconds per frame (the
    feature hop times the model's subsampling).
    Outputs: U ``TokenTiming`` s, in order.
    Raises:
        ValueError: ``T`` frames cannot hold the labelling (repeats need a blank between them).
    """
    lp = _as_numpy(log_probs)
    T = lp.shape[0]
    ids = [int(u) for u in ids]
    if not ids:
        return []
    states = [blank]
    for u in ids:
        states += [u, blank]                                                           # (S,) = 2U + 1
    S = len(states)
    emit = lp[:, states]                                                               # (T, S)
    score = np.full(S, NEG_INF)
    score[0] = emit[0, 0]
    score[1] = emit[0, 1]
    back = np.zeros((T, S), dtype=np.int64)
    skip = np.zeros(S, dtype=bool)                                                     # s-2 -> s allowed
    skip[3::2] = [ids[i] != ids[i - 1] for i in range(1, len(ids))]
    for t in range(1, T):
        stay, step = score, np.concatenate([[NEG_INF], score[:-1]])
        jump = np.where(skip, np.concatenate([[NEG_INF, NEG_INF], score[:-2]]), NEG_INF)
        options = np.stack([stay, step, jump])                                         # (3, S)
        choice = options.argmax(0)
        back[t] = choice
        score = options[choice, np.arange(S)] + emit[t]
    end = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    if not np.isfinite(score[end]):
        raise ValueError(f"{T} frames cannot hold these {len(ids)} units (a repeated unit needs a blank between): "
                         f"the ids do not come from these log-probabilities")
    path = np.empty(T, dtype=np.int64)
    s = end
    for t in range(T - 1, -1, -1):
        path[t] = s
        s -= back[t, s]
    out = []
    for i in range(len(ids)):
        frames = np.flatnonzero(path == 2 * i + 1)
        out.append(TokenTiming(ids[i], int(frames[0]), int(frames[-1]), float(frames[0] * frame_seconds),
                               float((frames[-1] + 1) * frame_seconds)))
    return out


def word_timings(timings: Sequence[TokenTiming], units: Sequence[str], space: str = " ") -> List[WordTiming]:
    """Words (runs of units between ``space`` units) with the start of their first unit and the end
    of their last."""
    words, current = [], []
    for timing in list(timings) + [None]:
        if timing is None or units[timing.id] == space:
            if current:
                words.append(WordTiming("".join(units[t.id] for t in current), current[0].start, current[-1].end))
            current = []
        else:
            current.append(timing)
    return words
