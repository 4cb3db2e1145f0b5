"""Language models from text files: ``fit``, ``evaluate``, ``generate``, ``load``. The command line (``rnnkit train lm``, ``evaluate``, ``predict``,
``generate``) calls these; they are the Python API for the same jobs.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from rnnkit.data import UNK, StreamBatches, Vocabulary, read_chunks, tokenize_file
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint, run_directory, validate
from rnnkit.train.checkpoint import load_task_model

from ..spec import single_checkpoint
from .config import LMConfig, LMData, Sampling
from .model import LanguageModel
from .task import LanguageModelTask, TrainedLanguageModel


def fit(path, out, *, valid=None, data: LMData = LMData(), model: Optional[dict] = None, train: TrainConfig,
        resume: bool = False) -> TrainResult:
    """Train a language model on the text file ``path``; checkpoints and log go to ``out``.

    Args:
        valid: a validation file; without it the last ``data.valid_fraction`` of ``path`` is held out.
        data: how the text becomes batches (tokens, vocabulary size, encoding, batch size, window).
        model: ``LMConfig`` fields other than ``vocab_size`` (defaults otherwise).
        resume: continue the run in ``out`` (same data settings, vocabulary and model).
    Outputs:
        the engine's ``TrainResult``.
    """
    out, model = Path(out), dict(model or {})
    LMConfig(vocab_size=1, **dict(model, softmax_cutoffs=None))      # bad options fail before any text is read
    if model.get("softmax_cutoffs") and data.tokens != "word":
        raise ValueError("an adaptive softmax (softmax_cutoffs, --adaptive-softmax) needs word tokens, whose "
                         "vocabulary is sorted by frequency; use --tokens word or a full softmax")
    with run_directory(out, resume=resume, task="lm"):
        if resume:
            vocab_dict = find_checkpoint(out).config["task"]["vocab"]
            vocab = Vocabulary.from_dict(vocab_dict)
        else:
            vocab = _build_vocabulary(path, valid, data)
            vocab_dict = vocab.to_dict()
        config = LMConfig(vocab_size=len(vocab), **model)        # the cutoffs checked against the vocabulary
        cache = out / "tokens"
        cache.mkdir(parents=True, exist_ok=True)
        ids = tokenize_file(path, vocab, cache / "train.bin", data.encoding)
        if valid is not None:
            valid_ids = tokenize_file(valid, vocab, cache / "valid.bin", data.encoding)
        else:
            cut = int(len(ids) * (1 - data.valid_fraction))
            ids, valid_ids = ids[:cut], ids[cut:]
        train_batches = StreamBatches(ids, data.batch_size, data.bptt, random_length=data.random_length,
                                      seed=train.seed)
        valid_batches = StreamBatches(valid_ids, validation_streams(len(valid_ids), data), data.bptt)
        torch.manual_seed(train.seed)
        task = LanguageModelTask(LanguageModel(config), vocab, {"vocab": vocab_dict, "data": asdict(data)})
        return Trainer(task, train, out).fit(train_batches, valid_batches, resume=resume)


def _build_vocabulary(path, valid, data: LMData) -> Vocabulary:
    """The vocabulary of the training text (characters: of the validation text too), with <unk>."""
    chunks = lambda file: read_chunks(file, data.encoding)                     # noqa: E731
    if data.tokens == "char":
        files = [path] + ([valid] if valid is not None else [])
        return Vocabulary.build((chunk for file in files for chunk in chunks(file)), "char",
                                specials=(UNK,))                               # an unseen character: <unk>
    return Vocabulary.build(chunks(path), data.tokens, max_size=data.vocab_size)


def validation_streams(tokens: int, data: LMData) -> int:
    """Parallel streams of the validation text: the batch size, fewer for a short text (at least
    two windows per stream)."""
    return min(data.batch_size, max(1, tokens // (2 * data.bptt)))


def evaluate(checkpoints, path, *, encoding: Optional[str] = None, bptt: int = 256, batch_size: int = 8,
             device: str = "cpu") -> dict:
    """Loss (nats per token), perplexity and, for character and BPE models, bits per character of a text file.

    The text is cut into ``batch_size`` streams read in windows of ``bptt`` tokens (the state carried
    from window to window), through the same validation pass as training's, so that evaluating the
    validation file with the training ``bptt`` and streams gives the number training logged.

    Args:
        checkpoints: a run or checkpoint directory (or a list of one).
        encoding: of the file (default: the one the model was trained with).
    Outputs:
        ``{"loss", "perplexity", "tokens", "bits_per_char" (char, bpe)}``: bits per character is the
        summed loss over the characters the predicted tokens stand for (``Vocabulary.count_chars``),
        which compares subword models with character models.
    """
    trained = load(single_checkpoint(checkpoints, "lm"), device=device)
    encoding = encoding or trained.data.get("encoding", "utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        ids = tokenize_file(path, trained.vocab, Path(tmp) / "eval.bin", encoding)      # memory-mapped
        streams = max(1, min(batch_size, len(ids) // 2))
        return validate(trained.task(), StreamBatches(ids, streams, bptt)(0), torch.device(device))


def generate(checkpoint, prompts: Sequence[str], *, device: str = "cpu", **sampling) -> List[str]:
    """The text sampled after each prompt; ``sampling``: ``Sampling`` fields (length, temperature,
    top_k, top_p, seed). ``load(checkpoint).generate(prompt, length)`` streams one prompt's."""
    options = Sampling(**sampling)
    trained = load(single_checkpoint(checkpoint, "lm"), device=device)
    return ["".join(trained.generate(prompt, options.length, temperature=options.temperature, top_k=options.top_k,
                                     top_p=options.top_p, seed=options.seed)) for prompt in prompts]


def predict_rows(checkpoints, prompts: Sequence[str], *, device: str = "cpu", **sampling) -> List[dict]:
    """``rnnkit predict``'s rows: ``{"prompt": ..., "text": ...}`` (``generate``)."""
    return [{"prompt": prompt, "text": text}
            for prompt, text in zip(prompts, generate(checkpoints, prompts, device=device, **sampling))]


def show(row: dict) -> str:
    """How ``rnnkit predict`` prints a continuation: the prompt and its text."""
    return row["prompt"] + row["text"]


def load(path, *, device: str = "cpu") -> TrainedLanguageModel:
    """Rebuild the language model saved in ``path`` (a run directory or a checkpoint directory)."""
    model, task, checkpoint = load_task_model(path, "lm", lambda task: LanguageModel(LMConfig(**task["model"])),
                                              device)
    return TrainedLanguageModel(model, Vocabulary.from_dict(task["vocab"]), checkpoint.config)


class _StepWithState(torch.nn.Module):
    """The language model with its state as flat tensors: ``(tokens, h_0[, c_0], h_1, ...) ->
    (logits, new h_0[, c_0], ...)``, each state (num_layers*directions, B, size) as the layer's."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model
        self.pairs = [layer.kind.has_cell_state for layer in model.layers]

    def forward(self, tokens, *flat):
        states, i = [], 0
        for pair in self.pairs:
            states.append((flat[i], flat[i + 1]) if pair else flat[i])
            i += 2 if pair else 1
        logits, new = self.model(tokens, states)
        out = [logits]
        for state in new:
            out += list(state) if isinstance(state, tuple) else [state]
        return tuple(out)


def exportable(trained: TrainedLanguageModel):
    """``rnnkit export``: the model over a (T, B) window of token ids from a given state, returning
    the logits (T, B, V) and the new state, so a runtime can generate step by step."""
    from rnnkit.export import Exportable

    model = trained.model
    names, sizes, dynamic = ["tokens"], [], {"tokens": {0: "length", 1: "batch"}}
    for k, layer in enumerate(model.layers):
        depth = layer.num_layers * (2 if layer.bidirectional else 1)
        parts = [("h", layer.proj_size or layer.hidden_size)] + ([("c", layer.hidden_size)] if layer.kind.has_cell_state
                                                                 else [])
        for letter, size in parts:
            names.append(f"{letter}{k}")
            sizes.append((depth, size))
            dynamic[f"{letter}{k}"] = {1: "batch"}

    def make_inputs(batch: int, length: int, generator: torch.Generator):
        tokens = torch.randint(0, model.config.vocab_size, (length, batch), generator=generator)
        return (tokens, *(0.5 * torch.randn(depth, batch, size, generator=generator) for depth, size in sizes))

    outputs = ["logits"] + [f"new_{name}" for name in names[1:]]
    return Exportable(_StepWithState(model).eval(), make_inputs, names, outputs, dynamic)
